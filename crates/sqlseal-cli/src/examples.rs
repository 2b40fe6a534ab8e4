//! The EXAMPLES sections of each command's long help (`--help`, and the
//! man pages made from it).

pub const KEYGEN: &str = "\
Examples:
  # a server key and an offline recovery key, each written 0600
  sqlseal keygen -o server.pem
  sqlseal keygen -o recovery.pem --json";

pub const KEY: &str = "\
Examples:
  sqlseal key public server.pem > server.pub.pem
  sqlseal key id server.pub.pem";

pub const KEY_PUBLIC: &str = "\
Examples:
  # the public half, to share (e.g. as a recovery recipient or a trusted signer)
  sqlseal key public recovery.pem > recovery.pub.pem";

pub const KEY_ID: &str = "\
Examples:
  sqlseal key id server.pem
  sqlseal key id server.pub.pem --json";

pub const BACKUP: &str = "\
Examples:
  sqlseal backup create --db app.db --dir backups --key server.pem
  sqlseal backup list --dir backups --key server.pem
  sqlseal backup verify --dir backups --all --key server.pem
  sqlseal backup restore --dir backups --latest --key server.pem --db restored.db";

pub const BACKUP_CREATE: &str = "\
Examples:
  sqlseal backup create --db app.db --dir backups --key server.pem
  # --key and --recipient repeat: encrypted to every key, signed by the first --key
  sqlseal backup create --db app.db --dir backups --key server.pem \\
      --recipient recovery.pub.pem --recipient ops.pub.pem
  sqlseal backup create --db app.db --dir s3://backups/prod/app.db --key server.pem --json
  # quick_check instead of integrity_check; or --check none to back up a damaged database as it is
  sqlseal backup create --db app.db --dir backups --key server.pem --check quick
  # only the pages changed since the newest point of the chain (a full backup starts one)
  sqlseal backup create --db app.db --dir backups --key server.pem --increment --check none";

pub const BACKUP_LIST: &str = "\
Examples:
  sqlseal backup list --dir backups
  # each header authenticated; --key and --trust repeat
  sqlseal backup list --dir backups --key server.pem --trust other-server.pub.pem
  # fields are tab-separated: the paths alone
  sqlseal backup list --dir backups | cut -f1
  sqlseal backup list --dir backups --json
  # one line per chain (full backup, increments, first and last point, bytes)
  sqlseal backup list --dir backups --chains --key server.pem";

pub const BACKUP_INFO: &str = "\
Examples:
  sqlseal backup info backups/app.db-20261124T080000.000000Z-0a1b2c.sqlseal
  # the newest backup whose header verifies with server.pem
  sqlseal backup info --dir backups --latest --key server.pem
  # the newest by its stated (unauthenticated) time, no key needed
  sqlseal backup info --dir backups --latest --json";

pub const BACKUP_VERIFY: &str = "\
Examples:
  sqlseal backup verify --dir backups --latest --key server.pem
  # every backup in the directory; exit code 3 if any fails
  sqlseal backup verify --dir backups --all --key server.pem
  # --key and --trust repeat: a recovery key opens it, the server's public key is trusted
  sqlseal backup verify backups/app.db-20261124T080000.000000Z-0a1b2c.sqlseal \\
      --key recovery.pem --trust server.pub.pem --json
  # run the full check whatever the seal records
  sqlseal backup verify --dir backups --all --key server.pem --check full";

pub const BACKUP_RESTORE: &str = "\
Examples:
  sqlseal backup restore --dir backups --latest --key server.pem --db restored.db
  # over the live database: its files are moved aside first
  sqlseal backup restore --dir backups --latest --key server.pem --db app.db --force
  # --key and --trust repeat
  sqlseal backup restore --dir backups --latest --key recovery.pem --trust server.pub.pem \\
      --db restored.db
  # re-run PRAGMA integrity_check even though the backup records one
  sqlseal backup restore --dir backups --latest --key server.pem --db restored.db --check full
  # a point in time (with Backup.IncrementFrequency, any second): as it was 15 minutes ago
  sqlseal backup restore --dir backups --at -15m --key server.pem --db restored.db
  sqlseal backup restore --dir backups --at 2026-12-01T09:30:00Z --key server.pem --db restored.db";

pub const RUN: &str = "\
Examples:
  sqlseal run --config sqlseal.yaml
  # JSON logs on stderr (the same as --log-format json)
  sqlseal run --config sqlseal.yaml --json";

pub const CONFIG: &str = "\
Examples:
  sqlseal config check --config sqlseal.yaml
  sqlseal config show --config sqlseal.yaml";

pub const CONFIG_CHECK: &str = "\
Examples:
  sqlseal config check --config sqlseal.yaml
  sqlseal config check --config sqlseal.yaml --json";

pub const CONFIG_SHOW: &str = "\
Examples:
  sqlseal config show --config sqlseal.yaml
  SQLSEAL_BACKUP_FREQUENCY=15m sqlseal config show --config sqlseal.yaml --json";

pub const STATUS: &str = "\
Examples:
  sqlseal status --config sqlseal.yaml
  sqlseal status --config sqlseal.yaml --json";

pub const DEMO: &str = "\
Examples:
  sqlseal demo
  sqlseal demo /tmp/sqlseal-demo --size-mib 64";

pub const COMPLETIONS: &str = "\
Examples:
  sqlseal completions bash > /etc/bash_completion.d/sqlseal
  sqlseal completions zsh > \"${fpath[1]}/_sqlseal\"
  sqlseal completions fish > ~/.config/fish/completions/sqlseal.fish";

pub const BACKUP_PRUNE: &str = "\
Examples:
  # what a policy would delete: 7 daily, 4 weekly, 12 monthly backups
  sqlseal backup prune --dir backups --key server.pem --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  # and do it
  sqlseal backup prune --dir backups --key server.pem --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --yes
  # keep the newest 10, as Backup.MaxCount: 10
  sqlseal backup prune --dir backups --key server.pem --max-count 10 --yes";
