// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) on its SQLite
// backend for local development and tests.
//
// It wraps FerretDB's embeddable package rather than installing cmd/ferretdb: a module
// build of cmd/ferretdb lacks the generated build/version/version.txt and panics at start.
package main

import (
	"context"
	"database/sql"
	"flag"
	"log"
	"net/url"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses; registers "sqlite"
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

	go indexIDPushdownForever(ctx, sqliteDir(*sqliteURL), time.Second)
	go checkpointForever(ctx, sqliteDir(*sqliteURL), 10*time.Second)

	log.Printf("FerretDB listening on %s, data in %s", *listenAddr, *sqliteURL)
	if err := server.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// FerretDB v1.24.2's SQLite backend indexes _id as `_ferretdb_sjson->"_id"` (the unique
// index it creates with each collection), but pushes `{_id: <string or ObjectId>}` filters
// of find, update and delete down as `WHERE _ferretdb_sjson->'$._id' = ?`
// (metadata.IDColumn). SQLite matches index expressions syntactically, so that index is
// never used and every lookup by _id scans the whole table. We add a second index on
// exactly the pushed-down expression to every collection table.
const (
	idPushdownExpr        = `_ferretdb_sjson->'$._id'`
	idPushdownIndexSuffix = "__id_pushdown"
	ferretdbCatalogTable  = "_ferretdb_collections" // FerretDB's list of collections, not one
)

// tablesLackingIDPushdown lists the collection tables without the pushdown index.
const tablesLackingIDPushdown = `
	SELECT t.name FROM sqlite_master t
	WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND t.name <> ?
	  AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || ?)`

// sqliteDir returns the directory of a FerretDB SQLite URI such as "file:data/" or
// "file:/tmp/x/" (both forms parse differently: the first as Opaque, the second as Path).
func sqliteDir(sqliteURL string) string {
	u, err := url.Parse(sqliteURL)
	if err != nil {
		return "" // FerretDB itself rejects the URI
	}
	if u.Path != "" {
		return u.Path
	}
	return u.Opaque
}

// indexIDPushdownForever indexes every database file in dir now and then every period,
// since FerretDB creates a collection's table on its first insert. Errors are only logged.
func indexIDPushdownForever(ctx context.Context, dir string, period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()

	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")) // error only on a bad pattern
		for _, file := range files {
			if err := indexIDPushdown(ctx, file); err != nil && ctx.Err() == nil {
				log.Printf("_id pushdown index for %s: %v", file, err)
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// indexIDPushdown creates the missing pushdown indexes of one database file. The
// connection is opened per call and kept only for the check: mode=rw never creates a
// file of a database FerretDB has just dropped, and the busy timeout waits for
// FerretDB's writes instead of failing.
func indexIDPushdown(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, tablesLackingIDPushdown, ferretdbCatalogTable, idPushdownIndexSuffix)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	for _, table := range tables {
		// A table dropped since the query fails with "no such table"; it is only logged.
		q := "CREATE INDEX IF NOT EXISTS " + quoteIdent(table+idPushdownIndexSuffix) +
			" ON " + quoteIdent(table) + " (" + idPushdownExpr + ")"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// quoteIdent quotes an SQLite identifier.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// SQLite's automatic checkpoints are passive: they copy what they can into the database but
// reset the write-ahead log only when no reader holds an older snapshot. Under continuous
// reads (reporting, the compactor) that moment never comes and the log grows without bound.
// checkpointForever runs a TRUNCATE checkpoint on every database file every period: it waits
// briefly for the readers of the moment to finish, copies the whole log and truncates it to
// zero bytes. A checkpoint that cannot finish within its short busy timeout is tried again
// next period, so FerretDB's writers are held up at most that long.
const checkpointBusyTimeoutMS = 200

func checkpointForever(ctx context.Context, dir string, period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}

		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")) // error only on a bad pattern
		for _, file := range files {
			if err := checkpoint(ctx, file); err != nil && ctx.Err() == nil {
				log.Printf("checkpoint of %s: %v", file, err)
			}
		}
	}
}

// checkpoint truncates one database file's write-ahead log, if its readers allow it now.
func checkpoint(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout("+
		strconv.Itoa(checkpointBusyTimeoutMS)+")")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	// One row: busy (1 if it could not finish), frames in the log, frames checkpointed.
	var busy, logFrames, checkpointed int
	return db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed)
}
