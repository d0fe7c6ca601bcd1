package driver

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// user is a ChildUser that records what it was given and refuses a child called "bad".
type user struct {
	parent
	got map[string]Driver
}

func (u *user) UseChildren(children map[string]Driver) error {
	u.got = children
	if _, ok := children["bad"]; ok {
		return fmt.Errorf("child %q is not wanted", "bad")
	}
	if _, ok := children["need"]; !ok {
		return fmt.Errorf("child %q is required", "need")
	}
	return nil
}

func init() {
	MustRegister(Info{Type: "test.User", Doc: "uses its config children",
		New: func(env Env) Driver {
			return &user{parent: parent{rec: rec{path: env.Path}, kids: []Child{
				{Name: "builtin", Type: "test.Rec", Driver: &rec{path: env.Path + ".builtin"}}}}}
		}})
}

func TestUseChildren(t *testing.T) {
	tree, err := build(t, `
export:
  target: {type: test.Rec}
  u:
    type: test.User
    children:
      need: {ref: target}
      own: {type: test.Rec}
`)
	if err != nil {
		t.Fatal(err)
	}
	u := tree.Find("u").Driver.(*user)
	var names []string
	for n := range u.got {
		names = append(names, n)
	}
	sort.Strings(names)
	if got, want := strings.Join(names, ","), "need,own"; got != want {
		t.Fatalf("children given: got %s, want %s (built-in children are not given)", got, want)
	}
	if u.got["need"] != tree.Find("target").Driver {
		t.Errorf("ref child: got %v, want the driver at target", u.got["need"])
	}
	if u.got["own"] != tree.Find("u.own").Driver {
		t.Errorf("own child: got %v, want the driver at u.own", u.got["own"])
	}
}

func TestUseChildrenErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"refused", `
export:
  u:
    type: test.User
    children:
      need: {type: test.Rec}
      bad: {type: test.Rec}
`, `exporter.yaml:5:5: export.u.children: child "bad" is not wanted`},
		{"missing, no children key", `
export:
  u: {type: test.User}
`, `exporter.yaml:3:3: export.u.children: child "need" is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, tc.src)
			lines := errLines(t, err)
			if len(lines) != 1 || lines[0] != tc.want {
				t.Fatalf("got %q, want [%q]", lines, tc.want)
			}
		})
	}
	// A ref to a missing node is reported once; the user is not asked (no cascade).
	_, err := build(t, `
export:
  u:
    type: test.User
    children:
      need: {ref: nowhere}
`)
	lines := errLines(t, err)
	if len(lines) != 1 || !strings.Contains(lines[0], `ref to unknown driver "nowhere"`) {
		t.Fatalf("got %q, want one error about the unknown ref", lines)
	}
}

// autoUser makes a built-in child "srv" unless the config gives one (AutoParent).
type autoUser struct {
	user
	given map[string]bool
}

func (a *autoUser) AutoChildren(given map[string]bool) []Child {
	a.given = given
	if given["srv"] {
		return nil
	}
	return []Child{{Name: "srv", Type: "test.Rec", Driver: &rec{path: a.path + ".srv"}}}
}

func init() {
	MustRegister(Info{Type: "test.AutoUser", Doc: "makes srv unless given",
		New: func(env Env) Driver { return &autoUser{user: user{parent: parent{rec: rec{path: env.Path}}}} }})
}

func TestAutoChildren(t *testing.T) {
	tree, err := build(t, `
export:
  u:
    type: test.AutoUser
    children:
      need: {type: test.Rec}
`)
	if err != nil {
		t.Fatal(err)
	}
	a := tree.Find("u").Driver.(*autoUser)
	if n := tree.Find("u.srv"); n == nil || n.Driver == nil || n.Info.Type != "test.Rec" {
		t.Fatalf("u.srv: got %+v, want the made child", n)
	}
	if !a.given["need"] || a.given["srv"] {
		t.Fatalf("given: %v, want need only", a.given)
	}
	if _, ok := a.got["srv"]; ok {
		t.Fatal("the made child was passed to UseChildren")
	}
	// Given in the config: not made, no clash, and passed to UseChildren.
	tree, err = build(t, `
export:
  u:
    type: test.AutoUser
    children:
      need: {type: test.Rec}
      srv: {type: test.Rec}
`)
	if err != nil {
		t.Fatal(err)
	}
	a = tree.Find("u").Driver.(*autoUser)
	if a.got["srv"] == nil || a.got["srv"] != tree.Find("u.srv").Driver {
		t.Fatalf("config srv: got %v, want the config child", a.got["srv"])
	}
}
