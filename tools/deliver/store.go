package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// Store keeps objects. Put replaces the object at key with body whole: a reader sees the
// old object or the new one, never a mixture. Put is called concurrently for different
// keys.
type Store interface {
	Put(ctx context.Context, key string, body []byte) error
}

// S3Options is how OpenStore reaches S3.
type S3Options struct {
	// Endpoint is the URL of an S3-compatible service; "" means AWS's endpoint of Region.
	// With an Endpoint, requests use path-style addressing (http://HOST/BUCKET/KEY), which
	// S3-compatible services accept.
	Endpoint string
	// Region signs requests; "" means us-east-1.
	Region string
	// Credentials sign requests; nil sends them unsigned.
	Credentials aws.CredentialsProvider
	// HTTPClient sends requests; nil means the SDK's.
	HTTPClient *http.Client
}

// OpenStore returns the store of d: a bucket through the S3 API, or a local directory
// (made if missing).
func OpenStore(d Destination, o S3Options) (Store, error) {
	if d.Dir != "" {
		if err := os.MkdirAll(d.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("deliver: destination directory: %w", err)
		}
		return &dirStore{dir: d.Dir}, nil
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := s3.Options{Region: region, Credentials: o.Credentials, UsePathStyle: o.Endpoint != "",
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired}
	if o.Credentials == nil {
		opts.Credentials = aws.AnonymousCredentials{}
	}
	if o.Endpoint != "" {
		opts.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.HTTPClient != nil {
		opts.HTTPClient = o.HTTPClient
	}
	return &s3Store{c: s3.New(opts), bucket: d.Bucket}, nil
}

// s3Store puts objects into a bucket. A PutObject replaces an object atomically.
type s3Store struct {
	c      *s3.Client
	bucket string
}

func (s *s3Store) Put(ctx context.Context, key string, body []byte) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		return fmt.Errorf("deliver: s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

// dirStore keeps each object as a file under dir, its key the file's path: a key's '/'
// makes directories. A file is replaced durably (temporary file, fsync, rename, fsync of
// the directory), so after a crash it holds the old object or the new one.
type dirStore struct {
	dir string
}

// errBadKey is a key that would name a file outside the directory.
var errBadKey = errors.New("a key with an empty, '.' or '..' segment cannot name a file in the destination directory")

func (s *dirStore) Put(_ context.Context, key string, body []byte) error {
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("deliver: %q: %w", key, errBadKey)
		}
	}
	path := filepath.Join(s.dir, filepath.FromSlash(key))
	if err := mkdirSynced(filepath.Dir(path)); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	if err := vfs.WriteFileAtomic(vfs.OS, path, body, 0o644); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}

// mkdirSynced makes dir and its missing parents, syncing the parent of each directory it
// makes, so that a file put in dir is not lost with its directory's entry in a crash.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return vfs.OS.SyncDir(parent)
}
