package mask

import (
	"fmt"
	"strings"
	"testing"
)

// hits returns "detector=text" for every match in s.
func hits(t testing.TB, m *Masker, s string) []string {
	t.Helper()
	sc := scanner{m: m, en: m.enabled()}
	v := []byte(s)
	sc.scan(v)
	var out []string
	for _, mt := range sc.matches {
		out = append(out, m.names[mt.det]+"="+string(v[mt.start:mt.end]))
	}
	return out
}

func allOn(t testing.TB) *Masker {
	t.Helper()
	c := DefaultConfig()
	c.Detect["all"] = Inherit
	m, err := New(c, []byte("test key"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	jwtHS256 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	bcryptH  = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	argonH   = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
	pemKey   = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----"
	awsKey   = "AKIAIOSFODNN7EXAMPLE"
	awsSec   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	azureKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

func TestDetectors(t *testing.T) {
	m := allOn(t)
	cases := []struct {
		in   string
		want []string
	}{
		// secrets
		{"id " + awsKey + " x", []string{"aws-access-key=" + awsKey}},
		{"ASIAY34FZKBOKMUTVV7A", []string{"aws-access-key=ASIAY34FZKBOKMUTVV7A"}},
		{awsKey + "," + awsSec, []string{"aws-access-key=" + awsKey, "aws-secret-key=" + awsSec}},
		{"aws_secret_access_key = " + awsSec, []string{"aws-secret-key=" + awsSec}},
		{"AWS_SECRET_ACCESS_KEY=" + awsSec, []string{"aws-secret-key=" + awsSec}},
		{`{"type": "service_account", "private_key_id": "a1b2c3d4e5f6", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"}`,
			[]string{"gcp-service-account=a1b2c3d4e5f6", `gcp-service-account=-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n`}},
		{"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + azureKey + ";EndpointSuffix=core.windows.net",
			[]string{"azure-storage-key=" + azureKey}},
		{"token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", []string{"github-token=ghp_16C7e42F292c6912E7710c838347Ae178B4a"}},
		{"gho_16C7e42F292c6912E7710c838347Ae178B4a", []string{"github-token=gho_16C7e42F292c6912E7710c838347Ae178B4a"}},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
			[]string{"github-token=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345"}},
		{"glpat-xxxxXXXXxxxx1234yyyy", []string{"gitlab-token=glpat-xxxxXXXXxxxx1234yyyy"}},
		{"SLACK=xoxb-2345678901-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", []string{"slack-token=xoxb-2345678901-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}},
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", []string{"stripe-key=sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},
		{"rk_live_51H8abcDEF123ghiJKL456", []string{"stripe-key=rk_live_51H8abcDEF123ghiJKL456"}},
		{"OPENAI_API_KEY sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", []string{"openai-key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}},
		{"sk-T3BlbkFJabcdef1234567890ABCDEFGH", []string{"openai-key=sk-T3BlbkFJabcdef1234567890ABCDEFGH"}},
		{"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefgh", []string{"anthropic-key=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefgh"}},
		{"Authorization: Bearer " + jwtHS256, []string{"jwt=" + jwtHS256}},
		{"key:\n" + pemKey + "\nend", []string{"private-key=" + pemKey}},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEow (truncated", []string{"private-key=-----BEGIN RSA PRIVATE KEY-----\nMIIEow (truncated"}},
		{"hash " + bcryptH, []string{"password-hash=" + bcryptH}},
		{argonH, []string{"password-hash=" + argonH}},
		{"$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", []string{"password-hash=$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"}},
		{"pbkdf2_sha256$260000$abcdefSALT$Yz3Q1nZ2kq+abcdefghijklmnopqrstuvwxyz0123=", []string{"password-hash=pbkdf2_sha256$260000$abcdefSALT$Yz3Q1nZ2kq+abcdefghijklmnopqrstuvwxyz0123="}},
		{"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy", []string{"password-hash=SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"}},
		{"postgres://app:s3cr%40t@db.internal:5432/app?sslmode=require", []string{"url-password=s3cr%40t"}},
		{"DATABASE_URL=mysql://root:hunter2@localhost/db", []string{"url-password=hunter2"}},
		{"redis://:p4ss@cache:6379/0", []string{"url-password=p4ss"}},
		{"host=db user=app password=hunter2 dbname=app", []string{"secret=hunter2"}},
		{"Server=db;Uid=sa;Pwd=Tr0ub4dor&3;", []string{"secret=Tr0ub4dor"}},
		{`{"user": "bob", "password": "c0rrect horse"}`, []string{"secret=c0rrect horse"}},
		{`{\"password\":\"s3cret\"}`, []string{"secret=s3cret"}},
		{"client_secret: abc123def456", []string{"secret=abc123def456"}},
		{"api_key=AbCdEf0123456789", []string{"secret=AbCdEf0123456789"}},
		{"X-Api-Key: q1w2e3r4t5y6", []string{"secret=q1w2e3r4t5y6"}},
		{"Authorization: Basic dXNlcjpwYXNz\r\nHost: x", []string{"secret=dXNlcjpwYXNz"}},
		{"PGPASSWORD=s3cret psql -h db", []string{"secret=s3cret"}},
		{`"clientSecret": "cs_9f8e7d"`, []string{"secret=cs_9f8e7d"}},
		{"ALTER USER app WITH PASSWORD 'it''s secret'", []string{"secret=it''s secret"}},
		{"CREATE ROLE x LOGIN PASSWORD 'hunter2' VALID UNTIL 'infinity'", []string{"secret=hunter2"}},
		{"UPDATE users SET password = 'hunter2' WHERE id = 1", []string{"secret=hunter2"}},
		// personal data
		{"mail bob.smith+tag@mail.example.co.uk today", []string{"email=bob.smith+tag@mail.example.co.uk"}},
		{"WHERE email = 'alice@example.com'", []string{"email=alice@example.com"}},
		{"Key (email)=(bob@example.com) already exists.", []string{"email=bob@example.com"}},
		{"mailto:jane@example.org", []string{"email=jane@example.org"}},
		{"4242424242424242", []string{"card=4242424242424242"}},
		{"card: 4111 1111 1111 1111, exp 12/29", []string{"card=4111 1111 1111 1111"}},
		{"5555-5555-5555-4444", []string{"card=5555-5555-5555-4444"}},
		{"amex 3782 822463 10005", []string{"card=3782 822463 10005"}},
		{"6011111111111117", []string{"card=6011111111111117"}},
		{"ssn 123-45-6789", []string{"ssn=123-45-6789"}},
		{"SSN: 123456789", []string{"ssn=123456789"}},
		{"078 05 1120", []string{"ssn=078 05 1120"}},
		{"call (555) 123-4567", []string{"phone=(555) 123-4567"}},
		{"555-123-4567", []string{"phone=555-123-4567"}},
		{"555.123.4567", []string{"phone=555.123.4567"}},
		{"1-800-555-0199", []string{"phone=1-800-555-0199"}},
		{"+14155552671", []string{"phone=+14155552671"}},
		{"+44 20 7946 0958", []string{"phone=+44 20 7946 0958"}},
		{"0044 20 7946 0958", []string{"phone=0044 20 7946 0958"}},
		{"+1 (415) 555-2671", []string{"phone=+1 (415) 555-2671"}},
		{"tel 020 7946 0958", []string{"phone=020 7946 0958"}},
		{"01 23 45 67 89", []string{"phone=01 23 45 67 89"}},
		{"IBAN DE89 3704 0044 0532 0130 00.", []string{"iban=DE89 3704 0044 0532 0130 00"}},
		{"GB82WEST12345698765432", []string{"iban=GB82WEST12345698765432"}},
		{"FR1420041010050500013M02606", []string{"iban=FR1420041010050500013M02606"}},
		{"from 192.168.1.20 to 10.0.0.1", []string{"ipv4=192.168.1.20", "ipv4=10.0.0.1"}},
		{"addr 2001:db8::8a2e:370:7334 ok", []string{"ipv6=2001:db8::8a2e:370:7334"}},
		{"fe80::1", []string{"ipv6=fe80::1"}},
	}
	for _, c := range cases {
		got := hits(t, m, c.in)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// Near misses: values that look like a detector's target and are not.
func TestNearMisses(t *testing.T) {
	m := allOn(t)
	for _, in := range []string{
		"order 123456789 shipped",              // a 9-digit order id is not an SSN
		"4242424242424241",                     // 16 digits failing Luhn
		"4111 1111 1111 1112",                  // grouped, failing Luhn
		"1234567812345670",                     // Luhn-valid, but no issuer starts with 1
		"550e8400-e29b-41d4-a716-446655440000", // UUID
		"12345678-1234-5678-1234-567812345678", // all-digit UUID
		"v1.22.3 build 2024.01.15",             // versions
		"2024-01-15 10:23:45.123456+00",        // timestamp
		"2024-01-15T10:23:45Z",                 // timestamp
		"ORD-2024-000123",                      // order reference
		"000-12-3456",                          // SSN area 000
		"666-12-3456",                          // SSN area 666
		"923-45-6789",                          // SSN area 9xx
		"123-00-6789",                          // SSN group 00
		"123-45-0000",                          // SSN serial 0000
		"123-45-6789-01",                       // part of a longer code
		"isbn 978-3-16-148410-0",               // ISBN
		"zip 94103-1234",                       // ZIP+4
		"5551234567",                           // bare digits are not a phone
		"10:23:45",                             // time, not IPv6
		"std::vector<int>",                     // C++, not IPv6
		"00:1a:2b:3c:4d:5e",                    // MAC address
		"DE89 3704 0044 0532 0130 01",          // IBAN failing mod-97
		"DE12",                                 // too short
		"user@localhost",                       // no dot in the domain
		"@mention and foo@",                    // no local part / domain
		"https://user@example.com/path",        // URL user without password
		"https://example.com:8443/x",           // port, not a password
		"AKIAIOSFODNN7EXAMPL",                  // 19 characters
		"AKIAIOSFODNN7EXAMPLEX",                // 21 characters
		"ghp_short",                            // too short
		"sk-learn and task-list",               // not keys
		"sk_test_abcdefghijklmnop",             // test keys are not live keys
		"eyJust a word.and.more",               // not base64 JSON
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", // a certificate is public
		"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",   // so is a public key
		"password_changed_at: 2024-01-01",                              // key is not a secret
		"has_password: true",                                           // trivial value
		"password: <redacted>",                                         // already masked
		"price $120.00 and $5",                                         // prices, not hashes
		"a 40-char sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",      // hex digest
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY without context",     // base64 without AWS context
		"the total was 1,234,567.89 EUR",                               // amount
		"call me maybe 12 34",                                          // short numbers
		"1.2.3.4.5",                                                    // not an IPv4 (five parts)
		"999.1.1.1",                                                    // octet out of range
		"PWD=/home/bob",                                                // a working directory
	} {
		if got := hits(t, m, in); len(got) > 0 {
			t.Errorf("%q: unexpected %q", in, got)
		}
	}
}

func TestStrategies(t *testing.T) {
	key := []byte("session key")
	mk := func(d map[string]Strategy) *Masker {
		c := DefaultConfig()
		for k, v := range d {
			c.Detect[k] = v
		}
		m, err := New(c, key)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	def := mk(nil)
	cases := []struct {
		m        *Masker
		in, want string
	}{
		{def, "bob@example.com", "***@example.com"},
		{def, "4242 4242 4242 4242", "****-****-****-4242"},
		{def, "123-45-6789", "<ssn>"},
		{def, "DE89370400440532013000", "DE****3000"},
		{def, "(555) 123-4567", "<phone>"},
		{def, "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "<github-token>"},
		{def, "postgres://u:pw@h/db", "postgres://u:<url-password>@h/db"},
		{mk(map[string]Strategy{"email": Redact}), "x bob@example.com y", "x <email> y"},
		{mk(map[string]Strategy{"secrets": Partial}), "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_****"},
		{mk(map[string]Strategy{"secrets": Partial}), "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_****"},
		{mk(map[string]Strategy{"secrets": Partial}), bcryptH, "$2b$12$****"},
		{mk(map[string]Strategy{"secrets": Partial}), "password=hunter2", "password=****"},
		{mk(map[string]Strategy{"phone": Partial}), "555-123-4567", "***-***-**67"},
		{mk(map[string]Strategy{"ssn": Partial}), "123-45-6789", "***-**-6789"},
		{mk(map[string]Strategy{"ipv4": Partial}), "10.1.2.3", "10.1.*.*"},
		{mk(map[string]Strategy{"email": Null}), "a bob@example.com", "a <email>"}, // Null is Redact in text
		{mk(map[string]Strategy{"email": Off}), "bob@example.com", "bob@example.com"},
	}
	for _, c := range cases {
		got, _ := c.m.Text(c.in)
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	// hash: stable within a key, different across keys and values, no plain text
	h := mk(map[string]Strategy{"email": Hash})
	a1, _ := h.Text("bob@example.com")
	a2, _ := h.Text("x bob@example.com")
	b1, _ := h.Text("eve@example.com")
	if !strings.HasPrefix(a1, "<email:") || len(a1) != len("<email:>")+2*hashBytes || !strings.HasSuffix(a2, a1) || a1 == b1 {
		t.Errorf("hash not stable/distinct: %q %q %q", a1, a2, b1)
	}
	c := DefaultConfig()
	c.Detect["email"] = Hash
	other, _ := New(c, []byte("another session"))
	if o, _ := other.Text("bob@example.com"); o == a1 {
		t.Errorf("hash does not depend on the key: %q", o)
	}
	if _, err := New(c, nil); err == nil {
		t.Error("hash without a key: want an error")
	}
}
