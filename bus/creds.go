package bus

import (
	"fmt"

	"github.com/nats-io/jwt/v2"

	"jsn.dev/jsn/bus/wire"
)

// CredsName returns the user name in the JWT of a NATS .creds file: the identity whose inbox
// prefix (_INBOX_<name>) the credential may subscribe to.
func CredsName(creds []byte) (string, error) {
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	if !wire.ValidName(uc.Name) {
		return "", fmt.Errorf("credentials: user name %q is not a single subject token", uc.Name)
	}
	return uc.Name, nil
}
