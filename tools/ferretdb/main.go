// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) on its SQLite
// backend for local development and tests. build.sh builds it against FerretDB's source
// with id-pushdown.patch applied (see docs/local-mongodb.md).
//
// It wraps FerretDB's embeddable package rather than installing cmd/ferretdb: a module
// build of cmd/ferretdb lacks the generated build/version/version.txt and panics at start.
package main

import (
	"context"
	"database/sql"
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // serves Go's profiles under /debug/pprof/ of -debug-addr
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
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
	debugAddr := flag.String("debug-addr", "", "TCP address serving Go's pprof profiles (off when empty)")
	flag.Parse()

	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Handler:   "sqlite",
		SQLiteURL: withMmap(*sqliteURL),
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	go indexIDForever(ctx, sqliteDir(*sqliteURL), time.Second)
	go checkpointForever(ctx, sqliteDir(*sqliteURL), 10*time.Second)

	if *debugAddr != "" {
		go func() { log.Print(http.ListenAndServe(*debugAddr, nil)) }() //nolint:gosec // profiling only
	}

	log.Printf("FerretDB listening on %s, data in %s", *listenAddr, *sqliteURL)
	if err := server.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// gcPercent is the Go garbage collector's target unless GOGC is set. Reading a document
// allocates several times its size, most of it garbage at once, and at Go's default of 100
// the collector took a large share of a big read's CPU; FerretDB's live heap is small,
// so a larger multiple of it costs little memory.
const gcPercent = 200

// mmapSize is SQLite's mmap_size for FerretDB's connections, unless the URI sets one: SQLite
// then reads the database through a memory map rather than with a system call per page it
// lacks in its small cache, which a read of many documents spread over the file does for
// nearly every one. SQLite caps it at its compile-time maximum (2 GiB) and reads pages beyond
// the map as before.
const mmapSize = 2147418112

// withMmap returns the SQLite URI with mmap_size set, if the URI does not set it.
func withMmap(sqliteURL string) string {
	u, err := url.Parse(sqliteURL)
	if err != nil {
		return sqliteURL // FerretDB itself rejects the URI
	}

	for _, pragma := range u.Query()["_pragma"] {
		if strings.HasPrefix(pragma, "mmap_size") {
			return sqliteURL
		}
	}

	separator := "?"
	if strings.Contains(sqliteURL, "?") {
		separator = "&"
	}

	return sqliteURL + separator + "_pragma=mmap_size(" + strconv.Itoa(mmapSize) + ")"
}

// FerretDB's SQLite backend, as patched by id-pushdown.patch, serves _id conditions (equality,
// $in, ranges) and sorts on _id from the expression `_ferretdb_sjson->>'$._id'`: the string
// itself for a string _id, in BSON's binary order. FerretDB's own unique index on _id is on
// another expression, and SQLite matches index expressions syntactically, so we add an index
// on exactly this one to every collection table. The index of the unpatched pushdown
// (`->'$._id'`, the JSON text) is dropped from stores that have it.
const (
	idIndexExpr          = `_ferretdb_sjson->>'$._id'`
	idIndexSuffix        = "__id_text"
	obsoleteIndexSuffix  = "__id_pushdown"
	ferretdbCatalogTable = "_ferretdb_collections" // FerretDB's list of collections, not one
)

// tablesLackingIDIndex lists the collection tables without the _id index.
const tablesLackingIDIndex = `
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

// indexIDForever indexes every database file in dir now and then every period,
// since FerretDB creates a collection's table on its first insert. Errors are only logged.
func indexIDForever(ctx context.Context, dir string, period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()

	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")) // error only on a bad pattern
		for _, file := range files {
			if err := indexID(ctx, file); err != nil && ctx.Err() == nil {
				log.Printf("_id index for %s: %v", file, err)
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// indexID creates the missing _id indexes of one database file. The
// connection is opened per call and kept only for the check: mode=rw never creates a
// file of a database FerretDB has just dropped, and the busy timeout waits for
// FerretDB's writes instead of failing.
func indexID(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, tablesLackingIDIndex, ferretdbCatalogTable, idIndexSuffix)
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
		q := "CREATE INDEX IF NOT EXISTS " + quoteIdent(table+idIndexSuffix) +
			" ON " + quoteIdent(table) + " (" + idIndexExpr + ")"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, "DROP INDEX IF EXISTS "+quoteIdent(table+obsoleteIndexSuffix)); err != nil {
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
