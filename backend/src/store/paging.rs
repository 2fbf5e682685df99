//! Where a newest-first listing resumes, and the audit trail's filters.

/// Where a newest-first listing resumes: the time and id of the last row
/// shown. Rows are ordered by (time, id), so rows sharing a millisecond are
/// neither skipped nor listed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAfter {
    /// The row's time (Unix ms): `queued_at`, `created_at` or `at`.
    pub at: i64,
    /// The row's id.
    pub id: String,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries before this time (Unix ms).
    pub before: Option<i64>,
    /// Only entries listed after this one (the previous page's last).
    pub after: Option<PageAfter>,
    /// Page size.
    pub limit: i64,
}
