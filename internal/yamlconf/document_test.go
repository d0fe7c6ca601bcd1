package yamlconf

import (
	"strings"
	"testing"
)

var documentTests = []struct {
	name  string
	src   string
	empty bool
	root  bool     // a root node comes back
	errs  []string // the problems, in order
}{
	{"mapping", "a: 1\n", false, true, nil},
	{"nothing", "", true, false, nil},
	{"only comments", "# nothing\n", true, false, nil},
	{"null document", "---\n", true, false, nil},
	{"first line", "a: b: c\n", false, false, []string{"f.yaml:1: invalid YAML: mapping values are not allowed in this context"}},
	{"later line", "a: 1\nb: [\n", false, false, []string{"f.yaml:2: invalid YAML: did not find expected node content"}},
	{"unknown anchor", "a: 1\nb: *k\n", false, false, []string{"f.yaml:2:4: invalid YAML: unknown anchor 'k' referenced"}},
	{"two documents", "a: 1\n---\nb: 2\n", false, true, []string{"f.yaml:2:1: multiple YAML documents; a test file is one document"}},
}

func TestDocument(t *testing.T) {
	for _, tt := range documentTests {
		t.Run(tt.name, func(t *testing.T) {
			root, empty, errs := Document("f.yaml", []byte(tt.src), "a test file")
			if empty != tt.empty || (root != nil) != tt.root {
				t.Fatalf("got root %v, empty %v, want root %v, empty %v", root != nil, empty, tt.root, tt.empty)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("got %v, want %q", errs, tt.errs)
			}
			for i, w := range tt.errs {
				if errs[i].Error() != w {
					t.Errorf("error %d: got %q, want %q", i, errs[i], w)
				}
			}
		})
	}
}

// FuzzDocument: any bytes give a root, empty, or errors saying why; never a panic.
func FuzzDocument(f *testing.F) {
	for _, tt := range documentTests {
		f.Add(tt.src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		root, empty, errs := Document("f.yaml", []byte(src), "a test file")
		if root == nil && !empty && len(errs) == 0 {
			t.Fatalf("%q: no root, not empty, and no error", src)
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), "f.yaml:") {
				t.Fatalf("error %q does not name the file", e)
			}
		}
	})
}
