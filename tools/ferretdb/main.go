// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) on its SQLite
// backend for local development and tests.
//
// It wraps FerretDB's embeddable package rather than installing cmd/ferretdb: a module
// build of cmd/ferretdb lacks the generated build/version/version.txt and panics at start.
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI of an existing directory")
	flag.Parse()

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	log.Printf("FerretDB listening on %s, data in %s", *listenAddr, *sqliteURL)
	if err := server.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
