package yamlconf

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ResolveAlias follows alias nodes.
func ResolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "want X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

// FindKey returns the key node of the dotted field in mapping n, or nil.
func FindKey(n *yaml.Node, field string) *yaml.Node {
	var key *yaml.Node
	for _, part := range strings.Split(field, ".") {
		n = ResolveAlias(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				key, next = n.Content[i], n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return key
}

// ValueOf returns the value node of key node k in mapping m.
func ValueOf(m, k *yaml.Node) *yaml.Node {
	m = ResolveAlias(m)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i] == k {
			return m.Content[i+1]
		}
	}
	return k
}

// ValueNode returns the value node of key k in mapping m, or m itself (a position for errors
// about a missing key) when m has no key k or is not a mapping.
func ValueNode(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return m
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return m
}

// JoinPath joins a dotted path and a key: JoinPath("export.power", "config").
func JoinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
