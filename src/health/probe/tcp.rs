//! TCP probe: connect, optionally send, optionally check the reply's first bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{show_bytes, ProbeError};

pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    send: Option<&[u8]>,
    expect_prefix: Option<&[u8]>,
) -> Result<String, ProbeError> {
    if let Some(bytes) = send {
        stream.write_all(bytes).await.map_err(ProbeError::send)?;
        stream.flush().await.map_err(ProbeError::send)?;
    }
    let Some(want) = expect_prefix else {
        return Ok("connected".to_string());
    };
    // Read only as much as the prefix needs: a banner's rest is none of our business.
    let mut got = Vec::with_capacity(want.len());
    let mut chunk = [0u8; 512];
    while got.len() < want.len() {
        let n = stream.read(&mut chunk).await.map_err(ProbeError::receive)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        // Fail early on a mismatch instead of waiting for bytes that cannot help.
        let seen = got.len().min(want.len());
        if got[..seen] != want[..seen] {
            break;
        }
    }
    if got.starts_with(want) {
        Ok(format!("reply starts with {}", show_bytes(want)))
    } else if got.is_empty() {
        Err(ProbeError::Closed("a reply"))
    } else {
        Err(ProbeError::Banner {
            got: show_bytes(&got),
            want: show_bytes(want),
        })
    }
}
