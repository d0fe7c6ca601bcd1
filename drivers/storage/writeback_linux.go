package storage

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback of the range's dirty pages
// without waiting for it.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing [off, off+n) of f to the disk now. Errors are
// ignored: it is only a hint, and the fsync at commit is what makes the data durable.
func startWriteback(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, syncFileRangeWrite)
}
