package pg_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// TestCopyBoth: a logical replication stream (CopyBothResponse, CopyData
// both ways, CopyDone) passes through a tunnel with hooks installed, and the
// connection is usable afterwards.
func TestCopyBoth(t *testing.T) {
	tu := startTunnel(t, &testHooks{}, pgtest.WithConf("wal_level = logical"))
	tu.srv.Exec(t, "alter role "+upUser+" replication")
	d := tu.direct(t)
	ctx := ctx10(t)
	if _, err := d.Exec(ctx, "create table tk (id int)"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(tu.dsn())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SyncConn(context.Background()); err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	_ = hc.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	fe := hc.Frontend
	fe.SendQuery(&pgproto3.Query{String: "CREATE_REPLICATION_SLOT gr_slot TEMPORARY LOGICAL test_decoding"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, m := range readUntilReady(t, fe) {
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("create slot: %s", e.Message)
		}
	}
	fe.SendQuery(&pgproto3.Query{String: "START_REPLICATION SLOT gr_slot LOGICAL 0/0"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*pgproto3.CopyBothResponse); !ok {
		t.Fatalf("want CopyBothResponse, got %#v", m)
	}
	if _, err := d.Exec(ctx, "insert into tk values (4242)"); err != nil {
		t.Fatal(err)
	}
	found := false
	for !found {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		cd, ok := m.(*pgproto3.CopyData)
		if !ok {
			t.Fatalf("want CopyData, got %#v", m)
		}
		found = bytes.Contains(cd.Data, []byte("4242"))
	}
	// a standby status update from the client, then end the stream
	status := make([]byte, 34)
	status[0] = 'r'
	fe.Send(&pgproto3.CopyData{Data: status})
	fe.Send(&pgproto3.CopyDone{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	readUntilReady(t, fe)
	fe.SendQuery(&pgproto3.Query{String: "IDENTIFY_SYSTEM"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, m := range readUntilReady(t, fe) {
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("after the stream: %s", e.Message)
		}
	}
}
