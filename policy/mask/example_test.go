package mask_test

import (
	"fmt"

	"github.com/guardrun/guardrun/policy/mask"
)

// The tunnel's glue: one Masker per session, one Plan per result set.
func Example() {
	m, err := mask.New(mask.DefaultConfig(), []byte("per-session HMAC key"))
	if err != nil {
		panic(err)
	}
	m = m.ForConnection("app")

	// StartResult: plan once from the RowDescription.
	p := m.Plan([]mask.Column{
		{Table: "users", Name: "id", TypeOID: 23},
		{Table: "users", Name: "email", TypeOID: 25},
		{Table: "users", Name: "password", TypeOID: 25},
		{Table: "users", Name: "notes", TypeOID: 25},
	})
	// Each DataRow: rewrite in place, then encode before the next Row.
	row := [][]byte{[]byte("7"), []byte("bob@example.com"), []byte("hunter2"), []byte("card 4242 4242 4242 4242")}
	p.Row(row)
	fmt.Printf("%s | %s | %s | %s\n", row[0], row[1], row[2], row[3])
	fmt.Println(p.Counts())

	// Statement text and server messages before they are recorded or shown.
	sql, _ := m.Text("ALTER USER app PASSWORD 'hunter2'")
	detail, _ := m.Text("Key (email)=(bob@example.com) already exists.")
	fmt.Println(sql)
	fmt.Println(detail)
	// Output:
	// 7 | ***@example.com | <password> | card ****-****-****-4242
	// map[card:1 column:users.password:1 email:1]
	// ALTER USER app PASSWORD '<secret>'
	// Key (email)=(***@example.com) already exists.
}
