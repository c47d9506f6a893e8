//! What can go wrong in a media run.

/// A media run's failure, saying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// GStreamer, an element, or a namespace is not usable.
    #[error("{0}")]
    Setup(String),
    /// A pipeline failed or did not get where it should in time.
    #[error("{0}")]
    Pipeline(String),
    /// The test bed (namespaces, tc, the bulk transfer) failed.
    #[error(transparent)]
    TestBed(#[from] qsock_testbed::Error),
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The plot could not be drawn.
    #[error("plot {0}")]
    Plot(String),
}

/// The result of a media run's steps.
pub type Result<T> = std::result::Result<T, Error>;
