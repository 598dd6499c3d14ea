//! Knowledge base through the API: uploads, websites, ingestion jobs, retrieval, deletion.
