package bus

import (
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// sealLab returns a signing key and the creds of a user it signed (as an exporter's).
func sealLab(t testing.TB) (nkeys.KeyPair, []byte) {
	t.Helper()
	signer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	j, err := jwt.NewUserClaims(pub).Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(j, seed)
	if err != nil {
		t.Fatal(err)
	}
	return signer, creds
}

// TestSeals: a sealed inbox names its client; the same seal under another client's name,
// another lease or exporter, a seal of another key, a damaged or missing seal name nobody.
func TestSeals(t *testing.T) {
	signer, creds := sealLab(t)
	other, _ := sealLab(t)
	sc, err := NewSealChecker(creds)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := Seal(signer, "e1", "L1", "bob")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := Seal(other, "e1", "L1", "bob")
	in := SealedInbox("e1", "L1", "bob", seal)
	for _, tt := range []struct {
		subject, want string
	}{
		{in + ".x.y", "bob"},
		{in + ".z", "bob"}, // cached now
		{SealedInbox("e1", "L1", "alice", seal) + ".x", ""},
		{SealedInbox("e1", "L2", "bob", seal) + ".x", ""},
		{SealedInbox("e2", "L1", "bob", seal) + ".x", ""},
		{SealedInbox("e1", "L1", "bob", foreign) + ".x", ""},
		{SealedInbox("e1", "L1", "bob", seal[:len(seal)-2]+"AA") + ".x", ""},
		{HolderInbox("e1", "L1", "bob") + ".x", ""},
		{HolderInbox("e1", "L1", "bob"), ""},
		{LeaseInbox("e1", "L1") + ".x", ""},
		{"_INBOX_c.bob.x", ""},
		{"", ""},
	} {
		if got := sc.Holder(tt.subject, "e1", "L1"); got != tt.want {
			t.Errorf("Holder(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
	if _, err := NewSealChecker([]byte("not creds")); err == nil {
		t.Error("NewSealChecker of garbage: no error")
	}
}

// FuzzSealHolder: any reply subject is checked without a panic, and only one carrying the
// client's valid seal names a client.
func FuzzSealHolder(f *testing.F) {
	signer, creds := sealLab(f)
	sc, err := NewSealChecker(creds)
	if err != nil {
		f.Fatal(err)
	}
	seal, _ := Seal(signer, "e1", "L1", "bob")
	for _, s := range []string{SealedInbox("e1", "L1", "bob", seal) + ".x", "_INBOX_l.e1.L1.bob..x", "_INBOX_l.e1.L1.bob.%%.x", "_INBOX_l.e1.L1.", "_INBOX_l.e1.L1.a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		who := sc.Holder(subject, "e1", "L1")
		if who != "" && (who != "bob" || !strings.HasPrefix(subject, SealedInbox("e1", "L1", "bob", seal))) {
			t.Fatalf("Holder(%q) = %q", subject, who)
		}
	})
}
