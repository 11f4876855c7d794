package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/guardrun/guardrun/policy"
	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/policy/sql"
	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/guard"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// guardedModes are guardrun as a session runs it: the baseline policy with
// the shape cache, masking with the default detectors, and (for "guard")
// the hash-chained session record written to a throwaway store. The
// difference between guard and guard-norec is what recording costs.
func guardedModes() []guardMode {
	return []guardMode{
		{Name: "guard", Hooks: func() pg.Hooks { return newGuardHooks(true) }},
		{Name: "guard-norec", Hooks: func() pg.Hooks { return newGuardHooks(false) }},
	}
}

func newGuardHooks(record bool) pg.Hooks {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	m, err := mask.New(mask.DefaultConfig(), key)
	if err != nil {
		panic(err)
	}
	o := guard.Options{
		Connection: "bench", Session: "bench", Agent: "pgbench",
		Identity: policy.Identity{Name: "bench"},
		Judge:    policy.Baseline(), Classifier: sql.NewClassifier(8192),
		Approver: tunnel.NewBroker(tunnel.BrokerOptions{}), Timeout: time.Second,
		Masker: guard.PolicyMasker(m.ForConnection("bench")),
	}
	if record {
		dir, err := os.MkdirTemp("", "guardrun-bench-store-")
		if err != nil {
			panic(err)
		}
		store, err := recorder.OpenStore(dir, recorder.StoreOptions{})
		if err != nil {
			panic(fmt.Sprintf("bench: session store: %v", err))
		}
		rec, err := store.Create(recorder.Start{Agent: "pgbench", Command: []string{"pgbench"}})
		if err != nil {
			panic(fmt.Sprintf("bench: session record: %v", err))
		}
		o.Recorder = rec
	}
	return guard.New(o)
}
