//! Files under the data directory. Every file of an account lives under `accounts/<account id>/`, so
//! deleting the account's files is deleting one directory.

use mtdesk_domain::{AccountId, SourceId};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.to_path_buf(),
        }
    }

    /// The directory holding every file of `account` (it may not exist yet).
    pub fn account_dir(&self, account: &AccountId) -> PathBuf {
        self.root.join("accounts").join(account.as_str())
    }

    /// Removes every file of the account. Idempotent: a missing directory is success.
    pub fn delete_account(&self, account: &AccountId) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.account_dir(account)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Where the original of an uploaded source is kept (for export and re-processing).
    pub fn source_path(&self, account: &AccountId, source: &SourceId) -> PathBuf {
        self.account_dir(account)
            .join("sources")
            .join(source.as_str())
    }

    /// Writes a source's original bytes; the write goes to a temporary name first, so a crash never leaves
    /// a truncated original behind under the real name.
    pub fn write_source(
        &self,
        account: &AccountId,
        source: &SourceId,
        bytes: &[u8],
    ) -> std::io::Result<PathBuf> {
        let path = self.source_path(account, source);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    pub fn read_source(&self, account: &AccountId, source: &SourceId) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.source_path(account, source))
    }

    /// Where a "Download my data" archive is kept: inside the account's directory, so deleting the account
    /// deletes it too. `id` is the export's id (a UUID, checked here so it can never name another path).
    pub fn export_path(&self, account: &AccountId, id: &str) -> std::io::Result<PathBuf> {
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad export id"))?;
        Ok(self
            .account_dir(account)
            .join("exports")
            .join(format!("{id}.zip")))
    }

    /// Removes an export's archive and any partial file a build left behind (`<id>.*.partial`).
    /// Idempotent.
    pub fn delete_export_file(&self, account: &AccountId, id: &str) -> std::io::Result<()> {
        let path = self.export_path(account, id)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        let entries = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let prefix = format!("{stem}.");
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".partial") {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Removes a source's original. Idempotent.
    pub fn delete_source(&self, account: &AccountId, source: &SourceId) -> std::io::Result<()> {
        let path = self.source_path(account, source);
        for p in [path.with_extension("partial"), path] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }
}
