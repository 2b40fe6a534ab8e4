# Sourced by benches/s3.sh and benches/increments.sh: a database of order
# rows (text, integers, an index on a text column, like benches/compare.sh),
# built with the sqlite3 CLI and a recursive CTE, then put in WAL mode.

# build_orders_db DB SIZE_MIB
build_orders_db() {
    local DB=$1 target=$(($2 * 1024 * 1024)) rows=0 bytes batch
    rm -f "$DB" "$DB-wal" "$DB-shm"
    sqlite3 "$DB" <<'SQL'
PRAGMA page_size = 4096;
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT NOT NULL, email TEXT NOT NULL,
    amount_cents INTEGER NOT NULL, status TEXT NOT NULL, note TEXT, created_at INTEGER NOT NULL);
CREATE INDEX orders_customer ON orders(customer);
SQL
    bytes=$(stat -c %s "$DB")
    while ((bytes < target)); do
        if ((rows == 0)); then batch=200000; else
            batch=$(((target - bytes) * rows / bytes + 1000))
            ((batch <= 1000000)) || batch=1000000
        fi
        sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
WITH RECURSIVE seq(n) AS (SELECT $((rows + 1)) UNION ALL SELECT n + 1 FROM seq WHERE n < $((rows + batch))),
r(n, name, k) AS (SELECT n, CASE n % 4 WHEN 0 THEN 'Ada' WHEN 1 THEN 'Grace' WHEN 2 THEN 'Linus'
    ELSE 'Margaret' END, abs(random()) % 99991 FROM seq)
INSERT INTO orders SELECT n, name || ' ' || k, lower(name) || '.' || k || '@example.com',
    abs(random()) % 100000, CASE n % 3 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' ELSE 'shipped' END,
    'order ' || n || ' for ' || name || ' ' || k || ', ref ' || hex(randomblob(6)),
    1700000000 + n * 37 FROM r;
SQL
        rows=$((rows + batch))
        bytes=$(stat -c %s "$DB")
    done
    sqlite3 "$DB" 'PRAGMA journal_mode = WAL' >/dev/null
}
