package sfuconfig_test

import (
	"context"
	"fmt"
	"log"

	sfuconfig "github.com/sfu-config/sfu-config/protocol/clients/go"
)

func ExampleHash() {
	h, err := sfuconfig.HashJSON([]byte(`{"b": "<&>\u2028", "a": [1.0, 2]}`))
	fmt.Println(h, err)
	// Output: sha256:17d01655edfb8c8b09b5b0589083582858459b0e3d0a5afe371b94e93781e04a <nil>
}

// The article's `config.Get()` becomes Client.Current: an atomic load of
// the applied config, with no SQS listener and no reload of its own.
func ExampleClient() {
	var client *sfuconfig.Client
	client, err := sfuconfig.New(sfuconfig.Options{
		URL:     "ws://127.0.0.1:7070",
		Name:    "my-sfu",
		Version: "1.0.0",
		Apply: func(ctx context.Context, cfg *sfuconfig.Config) error {
			if cur := client.Current(); cur != nil && cur.AsV2().Server.Port != cfg.AsV2().Server.Port {
				return sfuconfig.RestartRequired("/server/port", "server.port needs a restart")
			}
			return nil // new sessions read client.Current()
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = client.Run(context.Background()) }()
	// On the media path:
	if cfg := client.Current(); cfg != nil {
		_ = cfg.AsV2().Limits.MaxParticipantsPerRoom
	}
}
