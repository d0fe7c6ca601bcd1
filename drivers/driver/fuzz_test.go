package driver

import (
	"errors"
	"testing"
)

func FuzzBuild(f *testing.F) {
	for _, tt := range buildErrorTests {
		f.Add(tt.src)
	}
	f.Add(goodConfig)
	f.Add(lifeConfig)
	f.Add("export:\n  a: &x {type: test.Rec, children: {b: *x}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		export, err := exportNode(src)
		if err != nil {
			return // not YAML: the exporter package reports that
		}
		tree, err := Build("f.yaml", export, BuildOptions{})
		if err != nil {
			var ce ConfigErrors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("got %T %v, want ConfigErrors", err, err)
			}
			for _, e := range ce {
				if e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("bad config error %+v", e)
				}
			}
			return
		}
		tree.Describe()
		tree.Walk(func(n *Node) {
			if tree.Find(n.Path) != n || n.Resolve().Driver == nil {
				t.Fatalf("node %s: Find or Resolve broken", n.Path)
			}
			n.MethodNames()
		})
		tree.Close()
	})
}
