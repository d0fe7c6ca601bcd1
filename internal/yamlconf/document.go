package yamlconf

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Document parses data, the content of file, as one YAML document for Decode. It returns the
// document's root node; empty when the file holds none (nothing, only comments, a null document);
// and the problems found: invalid YAML at its line (and column when it can be found), and a
// second document ("multiple YAML documents; <one> is one document", one naming the kind of file:
// "an exporter config"). After a second document the root still comes back, so that its own
// problems are reported too; after invalid YAML in the first one, it does not.
func Document(file string, data []byte, one string) (root *yaml.Node, empty bool, errs Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true, nil
		}
		return nil, false, Errors{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs = append(errs, Error{File: file, Line: extra.Line, Col: extra.Column,
			Msg: "multiple YAML documents; " + one + " is one document"})
	} else if !errors.Is(err, io.EOF) {
		errs = append(errs, syntaxError(file, data, err))
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root == nil || IsNull(root) {
		return nil, true, errs
	}
	return root, false, errs
}

var (
	yamlLineRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })
	yamlAnchorRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`) })
)

// syntaxError turns a yaml.v3 syntax error into an Error with its line. yaml.v3 leaves the
// line out for problems on the first line, and for unknown anchors, which are found in data.
func syntaxError(file string, data []byte, err error) Error {
	msg := err.Error()
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlAnchorRE().FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line := bytes.Count(data[:i], []byte("\n")) + 1
			col := i - bytes.LastIndexByte(data[:i], '\n')
			return Error{File: file, Line: line, Col: col, Msg: "invalid YAML: " + msg}
		}
	}
	return Error{File: file, Line: 1, Msg: "invalid YAML: " + msg}
}
