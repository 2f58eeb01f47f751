//! Placeholder until the receiver branch lands.
pub fn router(
    _token: crate::ecs::credentials::Secret,
    _sink: tokio::sync::mpsc::Sender<super::Heard>,
    _status: std::sync::Arc<super::Status>,
) -> axum::Router {
    axum::Router::new()
}
