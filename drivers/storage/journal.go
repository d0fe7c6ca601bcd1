package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A flash written in place (a block device) changes the target as it goes: if it does not
// finish — the upload breaks, the exporter is killed — the target holds part of the new image
// over part of the old one. The journal records such a flash while it runs, in a small file of
// the image cache directory, so that State (the state() method) and the next flash can say so,
// even after the exporter restarted. A file target is replaced by a rename and never needs it.

// flashTemp is in the name of the temporary file a file target's flash writes
// (".<target>.jsn-<random>"), next to the target.
const flashTemp = ".jsn-"

// journalEvery is how many bytes a flash writes between two updates of its journal.
const journalEvery = 64 << 20

// journalRecord is the journal's content.
type journalRecord struct {
	Target  string    `json:"target"`
	Started time.Time `json:"started"`
	Size    int64     `json:"size,omitempty"`   // bytes expected from the client, 0 = unknown
	Written int64     `json:"written"`          // bytes written to the target so far (at least)
	Error   string    `json:"error,omitempty"`  // why it stopped, when the exporter saw it
	Updated time.Time `json:"updated,omitzero"` // last write of the record
}

// what describes the interrupted flash, for State and a Result note.
func (r *journalRecord) what() string {
	how := "it did not finish (the exporter stopped during it?)"
	if r.Error != "" {
		how = "it failed: " + r.Error
	}
	written := fmt.Sprintf("%s written", Bytes(r.Written))
	if r.Size > 0 {
		written = fmt.Sprintf("%s written, from an upload of %s", Bytes(r.Written), Bytes(r.Size))
	}
	return fmt.Sprintf("left by a flash started %s: %s, %s", r.Started.Local().Format("2006-01-02 15:04:05"), written, how)
}

// journal is the record of the flash running now.
type journal struct {
	s        *store
	rec      journalRecord
	previous *journalRecord // what an earlier, interrupted flash left; nil if none
}

// journalFile returns where the journal of the target lives, in the image cache directory; ""
// when there is none.
func (s *store) journalFile() string {
	if s.cache.dir == "" || s.path == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s.path))
	return filepath.Join(s.cache.dir, ".flash-"+hex.EncodeToString(sum[:8])+".json")
}

// readJournal returns the record an interrupted flash left, nil if none.
func (s *store) readJournal() (*journalRecord, error) {
	file := s.journalFile()
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r journalRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &r, nil
}

// State says whether the target holds what the last flash wrote ("complete"), or what an
// interrupted flash left ("incomplete: …").
func (s *store) State(ctx context.Context) (string, error) {
	r, err := s.readJournal()
	switch {
	case err != nil:
		// A record we cannot read is a flash that did not finish too.
		return "incomplete: a flash did not finish (its record is unreadable: " + err.Error() + ")", nil
	case r == nil:
		return "complete", nil
	}
	s.mu.Lock()
	busy := s.busy
	s.mu.Unlock()
	if strings.HasPrefix(busy, "write") {
		return "incomplete: a flash is running", nil
	}
	return "incomplete: the content was " + r.what(), nil
}

// startJournal records that a flash of size bytes (-1: unknown) starts writing the target in
// place. A journal that cannot be written is logged, not fatal: the flash goes on.
func (s *store) startJournal(size int64) *journal {
	j := &journal{s: s, rec: journalRecord{Target: s.path, Started: time.Now().UTC(), Size: max(size, 0)}}
	if prev, err := s.readJournal(); err == nil {
		j.previous = prev
	} else {
		j.previous = &journalRecord{Target: s.path, Error: "its record is unreadable: " + err.Error()}
	}
	j.write()
	return j
}

func (j *journal) write() {
	file := j.s.journalFile()
	if file == "" {
		return
	}
	j.rec.Updated = time.Now().UTC()
	b, _ := json.Marshal(j.rec)
	if err := writeFileAtomic(file, b); err != nil {
		j.s.log.Warn("flash journal: the target's state after an interruption will be unknown", "err", err)
	}
}

func (j *journal) progress(n int64) {
	j.rec.Written = n
	j.write()
}

// failed records why the flash stopped.
func (j *journal) failed(err error) {
	j.rec.Error = err.Error()
	j.write()
}

// complete removes the journal: the target holds the whole image.
func (j *journal) complete() {
	file := j.s.journalFile()
	if file == "" {
		return
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		j.s.log.Warn("flash journal: remove", "err", err)
	}
}

// writeFileAtomic writes b to file through a temporary file and a rename.
func writeFileAtomic(file string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp := file + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// removeStaleTemps removes the flash temporaries next to a file target that no writer holds
// (an exporter stopped during a flash left them; a flash in progress keeps its file locked).
func (s *store) removeStaleTemps() {
	if s.path == "" || s.path == "-" {
		return
	}
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return // no directory yet, or unreadable: nothing of ours to clean
	}
	prefix := "." + base + flashTemp
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), prefix) || !de.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, de.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			info, _ := f.Stat()
			if err := os.Remove(p); err == nil {
				var n int64
				if info != nil {
					n = info.Size()
				}
				s.log.Info("removed the temporary file of an interrupted flash", "file", p, "bytes", n)
			}
		}
		f.Close()
	}
}
