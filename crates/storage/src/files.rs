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
