package cluster

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// CoordinatorStore is s as seen by a coordinator elected under sess: it
// campaigns, and once it leads returns the store its changes go through
// (the tests' way to a coordinator without an agent process).
func CoordinatorStore(ctx context.Context, s *EtcdStore, sess *concurrency.Session) (*EtcdStore, error) {
	el := concurrency.NewElection(sess, s.key("coordinator"))
	if err := el.Campaign(ctx, `{"member": "test"}`); err != nil {
		return nil, err
	}
	return s.coordinating(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()), sess), nil
}

// Client is the store's etcd client.
func (s *EtcdStore) Client() *clientv3.Client { return s.cli }
