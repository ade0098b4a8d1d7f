package vfs

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces the file at path with b crash-safely: it writes a temporary file
// (path + ".tmp"), fdatasyncs it, renames it over path and fsyncs the directory, so that
// after a crash path holds either its old content or b, never a mixture. A leftover
// temporary file is harmless; owners delete "*.tmp" files when they open a directory.
func WriteFileAtomic(fsys FS, path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(filepath.Dir(path))
}
