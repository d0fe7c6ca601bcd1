package bus

import (
	"encoding/base64"
	"fmt"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"jsn.dev/jsn/bus/wire"
)

// Seals. A lease credential's inbox is HolderInbox(exporter, lease, client) followed by the
// controller's seal of the three: the lab signing key's signature of them (base64url, one
// subject token). NATS lets only that credential subscribe there, and nobody else ever sees the
// seal (it is in the credential's JWT and in the reply subjects of its own requests, which only
// the exporter receives), so a request whose reply subject carries a valid seal for client was
// made by client's credential: another client holding the same lease cannot name that inbox
// (it does not know the seal) to make a call count as the other's. The exporter checks seals
// with the signing key's public key, the issuer of its own credential (SealChecker).

// sealData is what the seal of client's inbox for lease on exporter signs.
func sealData(exporter, lease, client string) []byte {
	return []byte("jsn-inbox-seal\x00" + exporter + "\x00" + lease + "\x00" + client)
}

// Seal returns the seal of client's inbox for lease on exporter, signed by signer (the lab's
// signing key, which signs the credentials).
func Seal(signer nkeys.KeyPair, exporter, lease, client string) (string, error) {
	sig, err := signer.Sign(sealData(exporter, lease, client))
	if err != nil {
		return "", fmt.Errorf("seal inbox: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// SealedInbox is the inbox prefix of client's credential for lease on exporter, with its seal.
func SealedInbox(exporter, lease, client, seal string) string {
	return HolderInbox(exporter, lease, client) + "." + seal
}

// A SealChecker tells who a request's reply subject belongs to by its seal. It is safe for
// concurrent use.
type SealChecker struct {
	key nkeys.KeyPair

	mu   sync.Mutex
	good map[string]string // sealed inbox prefix → client, checked already
}

// NewSealChecker returns a checker of seals made by the key that signed the JWT of creds (a
// NATS .creds file issued by the same controller).
func NewSealChecker(creds []byte) (*SealChecker, error) {
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	key, err := nkeys.FromPublicKey(uc.Issuer)
	if err != nil {
		return nil, fmt.Errorf("credentials: issuer %q: %w", uc.Issuer, err)
	}
	return &SealChecker{key: key, good: map[string]string{}}, nil
}

// Holder returns the client whose sealed inbox for lease on exporter subject lies in, "" if it
// lies in none or its seal is not valid.
func (s *SealChecker) Holder(subject, exporter, lease string) string {
	client := InboxHolder(subject, exporter, lease)
	if client == "" {
		return ""
	}
	rest := subject[len(HolderInbox(exporter, lease, client)):] // "" or ".<seal>…"
	if len(rest) < 2 || rest[0] != '.' {
		return ""
	}
	seal := rest[1:]
	for i := 0; i < len(seal); i++ {
		if seal[i] == '.' {
			seal = seal[:i]
			break
		}
	}
	prefix := HolderInbox(exporter, lease, client) + "." + seal
	s.mu.Lock()
	who, ok := s.good[prefix]
	s.mu.Unlock()
	if ok {
		return who
	}
	sig, err := base64.RawURLEncoding.DecodeString(seal)
	if err != nil || !wire.ValidName(seal) || s.key.Verify(sealData(exporter, lease, client), sig) != nil {
		return ""
	}
	s.mu.Lock()
	if len(s.good) >= 4096 {
		clear(s.good)
	}
	s.good[prefix] = client
	s.mu.Unlock()
	return client
}
