# Sourced by benches/s3.sh, benches/increments.sh and benches/check_split.sh:
# a database of order rows (text, integers, an index on a text column, like
# benches/compare.sh), built with the sqlite3 CLI and a recursive CTE, then
# put in WAL mode.

# build_orders_db DB SIZE_MIB [TABLES]: TABLES tables of the same rows
# (orders, orders_2, ...; default 1), each with its index, filled together.
build_orders_db() {
    local DB=$1 target=$(($2 * 1024 * 1024)) tables=${3:-1} rows=0 bytes batch t table
    rm -f "$DB" "$DB-wal" "$DB-shm"
    sqlite3 "$DB" 'PRAGMA page_size = 4096'
    for ((t = 1; t <= tables; t++)); do
        table=orders
        ((t == 1)) || table=orders_$t
        sqlite3 "$DB" <<SQL
CREATE TABLE $table(id INTEGER PRIMARY KEY, customer TEXT NOT NULL, email TEXT NOT NULL,
    amount_cents INTEGER NOT NULL, status TEXT NOT NULL, note TEXT, created_at INTEGER NOT NULL);
CREATE INDEX ${table}_customer ON $table(customer);
SQL
    done
    bytes=$(stat -c %s "$DB")
    while ((bytes < target)); do
        if ((rows == 0)); then batch=$((200000 / tables)); else
            batch=$(((target - bytes) * rows / bytes + 1000))
            ((batch <= 1000000 / tables)) || batch=$((1000000 / tables))
        fi
        for ((t = 1; t <= tables; t++)); do
            table=orders
            ((t == 1)) || table=orders_$t
            sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
WITH RECURSIVE seq(n) AS (SELECT $((rows + 1)) UNION ALL SELECT n + 1 FROM seq WHERE n < $((rows + batch))),
r(n, name, k) AS (SELECT n, CASE n % 4 WHEN 0 THEN 'Ada' WHEN 1 THEN 'Grace' WHEN 2 THEN 'Linus'
    ELSE 'Margaret' END, abs(random()) % 99991 FROM seq)
INSERT INTO $table SELECT n, name || ' ' || k, lower(name) || '.' || k || '@example.com',
    abs(random()) % 100000, CASE n % 3 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' ELSE 'shipped' END,
    'order ' || n || ' for ' || name || ' ' || k || ', ref ' || hex(randomblob(6)),
    1700000000 + n * 37 FROM r;
SQL
        done
        rows=$((rows + batch))
        bytes=$(stat -c %s "$DB")
    done
    sqlite3 "$DB" 'PRAGMA journal_mode = WAL' >/dev/null
}
