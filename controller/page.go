package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// pageBytes bounds the encoded items of one list reply: far below the server's maximum message
// size (1 MiB by default), whatever the size of the lab.
const pageBytes = 256 << 10

// page returns the page of items (sorted by key, keys unique and not empty) that p asks for: the
// items after p.After, at most p.Limit of them (api.MaxPage by default) and about pageBytes, and
// the cursor of the next page ("" if this is the last).
func page[T any](items []T, key func(*T) string, p api.Page) ([]T, string) {
	limit := p.Limit
	if limit <= 0 || limit > api.MaxPage {
		limit = api.MaxPage
	}
	sort.Slice(items, func(i, j int) bool { return key(&items[i]) < key(&items[j]) })
	i := sort.Search(len(items), func(i int) bool { return key(&items[i]) > p.After })
	out := make([]T, 0, min(limit, len(items)-i))
	size := 0
	for ; i < len(items); i++ {
		b, _ := wire.Marshal(items[i])
		if len(out) == limit || len(out) > 0 && size+len(b) > pageBytes {
			return out, key(&out[len(out)-1])
		}
		size += len(b)
		out = append(out, items[i])
	}
	return out, ""
}

// leaseKey orders leases oldest first. It names a lease by a hash of its id, so that the cursor
// of a page ending with someone else's lease does not tell its id.
func leaseKey(l *api.Lease) string {
	h := sha256.Sum256([]byte(l.ID))
	return fmt.Sprintf("%020d-%s", l.Created.UnixNano(), hex.EncodeToString(h[:12]))
}
