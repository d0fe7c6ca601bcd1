package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"jsn.dev/jsn/bus/wire"
)

type fakeSession struct{}

func (fakeSession) WebSocketURL() string        { return "ws://127.0.0.1:1" }
func (fakeSession) Describe() *wire.Description { return &wire.Description{Exporter: "e"} }

// FuzzLocalExchange: whatever a page posts to a local session's api/exchange, only the right
// token buys the session; anything else is a clear 401, never a panic.
func FuzzLocalExchange(f *testing.F) {
	f.Add([]byte(`{"token":"secret"}`))
	f.Add([]byte(`{"token":"wrong"}`))
	f.Add([]byte(`{"token":["secret"]}`))
	f.Add([]byte("\x00"))
	w := &localWeb{token: "secret"}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		w.exchange(rec, httptest.NewRequest(http.MethodPost, "/api/exchange", bytes.NewReader(body)), "e", "local-1", fakeSession{})
		var tok struct {
			Token string `json:"token"`
		}
		right := json.NewDecoder(bytes.NewReader(body)).Decode(&tok) == nil && tok.Token == "secret"
		switch {
		case right && rec.Code != http.StatusOK:
			t.Fatalf("body %q: status %d, want 200", body, rec.Code)
		case !right && (rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "wrong token")):
			t.Fatalf("body %q: %d %s, want 401 wrong token", body, rec.Code, rec.Body.String())
		}
	})
}

func TestCheckWebAddr(t *testing.T) {
	for _, a := range []string{"127.0.0.1:8080", "[::1]:0", "localhost:80"} {
		if err := checkWebAddr(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"0.0.0.0:8080", ":8080", "192.0.2.1:80", "8080"} {
		if err := checkWebAddr(a); err == nil || !strings.Contains(err.Error(), a) {
			t.Errorf("%s: %v, want a refusal naming it", a, err)
		}
	}
}
