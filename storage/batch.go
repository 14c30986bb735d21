package storage

import (
	"context"
	"fmt"
	"reflect"

	"github.com/aws/aws-sdk-go/aws"
	awss3 "github.com/aws/aws-sdk-go/service/s3"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	s3driver "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// BatchMax is the most files one DeleteFiles call takes: S3's DeleteObjects limit.
const BatchMax = 1000

// Batcher deletes many files in one request where the store can. distribution's
// s3 driver deletes a path with a listing and a DeleteObjects of what it lists: two
// requests a blob. A blob's data file and a layer link file are the whole of what a
// sweep deletes for them (on an object store a directory is only the keys under
// it), so a thousand of them go in one request.
type Batcher interface {
	// DeleteFiles deletes at most BatchMax files, each a blob's data or a layer link
	// (any other path is refused before anything is deleted). A file already gone
	// is no error: a rerun of a failed job deletes the same batch again.
	DeleteFiles(ctx context.Context, paths []string) error
}

// NewBatcher returns drv's Batcher, and false for drivers without one (the
// filesystem, where a delete is one call anyway). It uses the s3 driver's own
// client, credentials and bucket, so that a batch reaches exactly what the
// driver's Delete would.
//
// regsweep's own wrappers are looked through: a batch is one request at a time, so
// the adaptive limit does not apply, and the SDK's retries with the caller's
// deadline stand in for Patient's.
func NewBatcher(drv driver.StorageDriver) (Batcher, bool) {
	for {
		switch w := drv.(type) {
		case *Adaptive:
			drv = w.StorageDriver
			continue
		case *Patient:
			drv = w.StorageDriver
			continue
		}
		break
	}
	d, ok := drv.(*s3driver.Driver)
	if !ok || d.StorageDriver == nil {
		return nil, false
	}
	v := reflect.ValueOf(d.StorageDriver)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	client, _ := field(v.Elem(), "S3").(*awss3.S3)
	bucket, _ := field(v.Elem(), "Bucket").(string)
	if client == nil || bucket == "" {
		return nil, false
	}
	return &s3Batcher{d: d, client: client, bucket: bucket}, true
}

func field(v reflect.Value, name string) any {
	f := v.FieldByName(name)
	if !f.IsValid() || !f.CanInterface() {
		return nil
	}
	return f.Interface()
}

type s3Batcher struct {
	d      *s3driver.Driver
	client *awss3.S3
	bucket string
}

func (b *s3Batcher) DeleteFiles(ctx context.Context, paths []string) error {
	if len(paths) > BatchMax {
		return fmt.Errorf("delete %d files in one request: at most %d", len(paths), BatchMax)
	}
	if len(paths) == 0 {
		return nil
	}
	objs := make([]*awss3.ObjectIdentifier, 0, len(paths))
	for _, p := range paths {
		s, err := Parse(p)
		if err != nil || s.Kind != BlobData && s.Kind != LayerLink {
			return fmt.Errorf("refusing a batch delete of %s: only blob data and layer links go in batches (%v)", p, err)
		}
		objs = append(objs, &awss3.ObjectIdentifier{Key: aws.String(b.d.S3BucketKey(p))})
	}
	resp, err := b.client.DeleteObjectsWithContext(ctx, &awss3.DeleteObjectsInput{
		Bucket: aws.String(b.bucket),
		Delete: &awss3.Delete{Objects: objs, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("delete %d files from %s in one request (first %s): %w", len(paths), b.bucket, paths[0], err)
	}
	if len(resp.Errors) > 0 {
		e := resp.Errors[0]
		return fmt.Errorf("delete %d files from %s in one request: %d failed, first %s: %s %s", len(paths), b.bucket, len(resp.Errors), aws.StringValue(e.Key), aws.StringValue(e.Code), aws.StringValue(e.Message))
	}
	return nil
}
