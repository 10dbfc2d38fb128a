//! Tracing set-up shared by every function: called once at the top of `main`.

use tracing_subscriber::EnvFilter;

/// Initialises the global tracing subscriber.
///
/// Logs are JSON when `AWS_LAMBDA_LOG_FORMAT=JSON` (the Lambda advanced logging
/// control), plain text otherwise. The level comes from `AWS_LAMBDA_LOG_LEVEL`, then
/// `RUST_LOG`, defaulting to `info`. The Lambda runtime adds the request id per event.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // CloudWatch stamps every line itself.
        .without_time();
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_ansi(false).init();
    }
}
