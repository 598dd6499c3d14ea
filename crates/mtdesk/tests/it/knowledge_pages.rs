//! Dashboard pages of the knowledge base (written by the dashboard work).
