//! Files under the data directory. Every file of an account lives under `accounts/<account id>/`, so
//! deleting the account's files is deleting one directory.

use mtdesk_domain::AccountId;
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
}
