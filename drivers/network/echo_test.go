package network

import (
	"context"
	"io"
	"testing"

	"jsn.dev/jsn/drivers/drivertest"
)

func TestEcho(t *testing.T) {
	c, err := drivertest.OpenStream(context.Background(), &Echo{}, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write([]byte("hello echo"))
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello echo" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}
