//! Response bodies: a page's bytes, or the origin's body passed through, and
//! reading a body only up to a limit.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

/// The body of a [`PageCache`](super::PageCache)'s responses: a page's bytes,
/// or the origin's own body, passed through as it streams (after what was
/// read of it while it could still have been cached).
///
/// ```
/// use http_body::Body as _;
/// use cache_runtime::http::PageBody;
///
/// let body = PageBody::<http_body_util::Empty<bytes::Bytes>>::full("hello".into());
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
pub struct PageBody<B: Body> {
    kind: Kind<B>,
}

enum Kind<B: Body> {
    Full(Option<Bytes>),
    Origin {
        /// Frames read while looking whether the response could be cached.
        read: VecDeque<Frame<Bytes>>,
        /// The error that stopped that reading, sent after `read`.
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    },
}

// Nothing is pinned in place: the origin's body is boxed.
impl<B: Body> Unpin for PageBody<B> {}

impl<B: Body> PageBody<B> {
    /// A body of `bytes`.
    #[must_use]
    pub fn full(bytes: Bytes) -> Self {
        Self { kind: Kind::Full(Some(bytes)) }
    }

    /// The origin's body, untouched.
    pub(super) fn origin(body: B) -> Self {
        Self { kind: Kind::Origin { read: VecDeque::new(), error: None, rest: Some(Box::pin(body)) } }
    }
}

impl<B: Body> fmt::Debug for PageBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => {
                f.debug_tuple("PageBody::Full").field(&bytes.as_ref().map_or(0, Bytes::len)).finish()
            }
            Kind::Origin { read, .. } => {
                f.debug_struct("PageBody::Origin").field("read_frames", &read.len()).finish()
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for PageBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => {
                Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
            }
            Kind::Origin { read, error, rest } => {
                if let Some(frame) = read.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    *rest = None;
                    return Poll::Ready(Some(Err(error)));
                }
                match rest {
                    Some(body) => body.as_mut().poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Origin { read, error, rest } => {
                read.is_empty() && error.is_none() && rest.as_ref().is_none_or(|body| body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Origin { read, rest, .. } => {
                let read: u64 = read.iter().filter_map(Frame::data_ref).map(|data| data.len() as u64).sum();
                let rest = rest.as_ref().map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint());
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

/// A response read for caching.
pub(super) enum Read<B: Body> {
    /// The whole body, within the limit.
    Whole(http::response::Parts, Bytes),
    /// Not cacheable for its body (too large, of unknown length, with
    /// trailers, or failed): what was read and the rest, to pass through.
    PassThrough(Response<PageBody<B>>),
}

/// Reads `response`'s body if its length is known and at most `limit`; never
/// holds more than `limit` bytes of it.
pub(super) async fn read_within<B>(response: Response<B>, limit: u64) -> Read<B>
where
    B: Body<Data = Bytes>,
{
    let (parts, body) = response.into_parts();
    let length = body.size_hint().exact().or_else(|| content_length(&parts.headers));
    if length.is_none_or(|length| length > limit) {
        return Read::PassThrough(Response::from_parts(parts, PageBody::origin(body)));
    }
    let mut body = Box::pin(body);
    let mut read = VecDeque::new();
    let mut total: u64 = 0;
    let error = loop {
        match body.frame().await {
            None => {
                let mut whole = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
                for data in read.into_iter().filter_map(|frame: Frame<Bytes>| frame.into_data().ok()) {
                    whole.extend_from_slice(&data);
                }
                return Read::Whole(parts, whole.freeze());
            }
            Some(Ok(frame)) => {
                let trailers = frame.is_trailers();
                total = total.saturating_add(frame.data_ref().map_or(0, |data| data.len() as u64));
                read.push_back(frame);
                if trailers || total > limit {
                    break None; // longer than it said, or with trailers: not cached
                }
            }
            Some(Err(error)) => break Some(error),
        }
    };
    let rest = error.is_none().then_some(body);
    Read::PassThrough(Response::from_parts(parts, PageBody { kind: Kind::Origin { read, error, rest } }))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of given frames, with or without a known length.
    struct Frames {
        frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
        exact: Option<u64>,
    }

    impl Frames {
        fn new(
            frames: impl IntoIterator<Item = Result<Frame<Bytes>, &'static str>>,
            exact: Option<u64>,
        ) -> Self {
            Self { frames: frames.into_iter().collect(), exact }
        }
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.frames.pop_front())
        }

        fn size_hint(&self) -> SizeHint {
            self.exact.map_or_else(SizeHint::new, SizeHint::with_exact)
        }
    }

    fn data(text: &'static str) -> Result<Frame<Bytes>, &'static str> {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    async fn collect(body: PageBody<Frames>) -> (Vec<u8>, Option<&'static str>, bool) {
        let mut body = std::pin::pin!(body);
        let (mut bytes, mut trailers) = (Vec::new(), false);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) if frame.is_trailers() => trailers = true,
                Ok(frame) => bytes.extend_from_slice(&frame.into_data().unwrap_or_default()),
                Err(error) => return (bytes, Some(error), trailers),
            }
        }
        (bytes, None, trailers)
    }

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    fn respond_with(body: Frames, content_length: Option<&str>) -> Response<Frames> {
        let mut response = Response::new(body);
        if let Some(length) = content_length {
            response.headers_mut().insert(CONTENT_LENGTH, length.parse().unwrap());
        }
        response
    }

    #[test]
    fn a_body_within_the_limit_is_read_whole() {
        run(async {
            let body = Frames::new([data("hel"), data("lo")], Some(5));
            let Read::Whole(_, bytes) = read_within(respond_with(body, None), 5).await else {
                panic!("cacheable")
            };
            assert_eq!(bytes, "hello");
            let body = Frames::new([data("hello")], None);
            assert!(
                matches!(read_within(respond_with(body, Some("5")), 5).await, Read::Whole(..)),
                "Content-Length counts"
            );
        });
    }

    #[test]
    fn unknown_or_large_lengths_pass_through_unread() {
        run(async {
            for (exact, header) in [(None, None), (Some(6), None), (None, Some("6")), (None, Some("x"))] {
                let body = Frames::new([data("hello!")], exact);
                let Read::PassThrough(response) = read_within(respond_with(body, header), 5).await else {
                    panic!("not cacheable: {exact:?} {header:?}")
                };
                let PageBody { kind: Kind::Origin { read, .. } } = response.body() else {
                    panic!("the origin's body")
                };
                assert!(read.is_empty(), "nothing read ahead");
                assert_eq!(collect(response.into_body()).await, (b"hello!".to_vec(), None, false));
            }
        });
    }

    #[test]
    fn a_body_longer_than_it_said_stops_being_read_at_the_limit() {
        run(async {
            let body = Frames::new([data("abc"), data("def"), data("ghi"), data("jkl")], Some(4));
            let Read::PassThrough(response) = read_within(respond_with(body, None), 5).await else {
                panic!("too long")
            };
            let PageBody { kind: Kind::Origin { read, .. } } = response.body() else {
                panic!("the origin's body")
            };
            assert_eq!(read.len(), 2, "read up to the first frame over the limit");
            assert_eq!(collect(response.into_body()).await.0, b"abcdefghijkl");
        });
    }

    #[test]
    fn trailers_and_errors_pass_through_in_order() {
        run(async {
            let trailers = Ok(Frame::trailers(HeaderMap::new()));
            let body = Frames::new([data("ab"), trailers], Some(2));
            let Read::PassThrough(response) = read_within(respond_with(body, None), 5).await else {
                panic!("trailers")
            };
            assert_eq!(collect(response.into_body()).await, (b"ab".to_vec(), None, true));

            let body = Frames::new([data("ab"), Err("reset"), data("never")], Some(2));
            let Read::PassThrough(response) = read_within(respond_with(body, None), 5).await else {
                panic!("failed")
            };
            assert_eq!(collect(response.into_body()).await, (b"ab".to_vec(), Some("reset"), false));
        });
    }

    #[test]
    fn full_bodies_end_at_once_when_empty() {
        let empty = PageBody::<Frames>::full(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
        assert_eq!(run(collect(PageBody::full(Bytes::from_static(b"x")))), (b"x".to_vec(), None, false));
    }
}
