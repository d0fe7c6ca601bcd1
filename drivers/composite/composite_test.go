package composite

import (
	"context"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func build(t *testing.T, src string) (*driver.Tree, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return driver.Build("c.yaml", doc.Content[0], driver.BuildOptions{})
}

func TestCompositeAndProxy(t *testing.T) {
	tree, err := build(t, `
board:
  type: jumpstarter_driver_composite.driver.Composite
  children:
    inner:
      type: composite
proxy:
  type: jumpstarter_driver_composite.driver.Proxy
  config: {ref: board.inner}
ref:
  ref: board.inner
`)
	if err != nil {
		t.Fatal(err)
	}
	board := tree.Find("board")
	if board.Info.Type != Type || len(board.Children) != 1 || len(board.MethodNames()) != 0 {
		t.Errorf("got board %+v", board)
	}
	desc := tree.Describe()
	proxy, ref := desc[1], desc[2]
	for _, d := range []*wire.NodeDesc{proxy, ref} {
		if d.Type != "ref" || d.Ref != "board.inner" {
			t.Errorf("got %+v, want a ref to board.inner", d)
		}
	}
	if tree.Find("proxy").Resolve() != tree.Find("board.inner") || tree.Find("proxy").Driver != nil {
		t.Error("proxy does not resolve to board.inner like a ref")
	}
	ctx := context.Background()
	if err := tree.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tree.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestProxyErrors(t *testing.T) {
	_, err := build(t, `
a:
  type: jumpstarter_driver_composite.driver.Proxy
b:
  type: jumpstarter_driver_composite.driver.Proxy
  config: {ref: nowhere}
c:
  type: composite
  config: {x: 1}
`)
	var ce driver.ConfigErrors
	if err == nil {
		t.Fatal("got no error")
	}
	ce = err.(driver.ConfigErrors)
	var got []string
	for _, e := range ce {
		got = append(got, e.Error())
	}
	want := []string{
		`c.yaml:2:1: export.a.config: missing required field "ref"`,
		`c.yaml:6:17: export.b.config.ref: ref to unknown driver "nowhere"`,
		`c.yaml:9:12: export.c.config: unknown field "x"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := driver.Aliases("jumpstarter_driver_composite."); !slices.Equal(got, []string{JumpstarterComposite, JumpstarterProxy}) {
		t.Errorf("got aliases %v", got)
	}
}
