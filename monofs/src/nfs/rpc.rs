//! ONC RPC over TCP (RFC 5531): record marking, and the parts of call and
//! reply messages the front reads and writes itself.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The high bit of a record-marking header: this fragment ends its record.
const LAST_FRAGMENT: u32 = 1 << 31;

/// The largest request the front takes: a WRITE of `wtmax` (1 MiB) plus its
/// headers, with room to spare. nfsserve alone would allocate whatever a
/// header claims, up to 2 GiB.
pub const MAX_REQUEST: usize = (1 << 20) + (64 << 10);

/// The largest reply the front relays from nfsserve: a READ of `rtmax`
/// (1 MiB) or a READDIR of the client's count, which libnfs asks in MiB.
pub const MAX_REPLY: usize = 16 << 20;

/// Bytes of the record-marking header in front of every record.
pub const HEADER: usize = 4;

/// Reads one record into `buf`, joined into a single fragment with its
/// header in the first [`HEADER`] bytes, ready to forward as it is.
/// Returns false at a clean end of stream (between records).
pub async fn read_record<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER]);
    loop {
        let mut head = [0u8; HEADER];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && buf.len() == HEADER => return Ok(false),
            Err(e) => return Err(e),
        }
        let head = u32::from_be_bytes(head);
        let len = (head & !LAST_FRAGMENT) as usize;
        let start = buf.len();
        if start - HEADER + len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("RPC record of more than {} bytes refused", start - HEADER + len),
            ));
        }
        // Grown as the bytes arrive, not to the length the header claims:
        // a client that claims a megabyte and stalls costs what it sent.
        let got = (&mut *r).take(len as u64).read_to_end(buf).await?;
        if got < len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if head & LAST_FRAGMENT != 0 {
            seal(buf);
            return Ok(true);
        }
    }
}

/// Writes the record-marking header of a single-fragment record whose body
/// follows the first [`HEADER`] bytes of `record`.
pub fn seal(record: &mut [u8]) {
    let len = (record.len() - HEADER) as u32;
    record[..HEADER].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
}

/// The header of an RPC call: who it is for, and where its arguments start.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    /// Offset of the procedure's arguments in the message.
    pub args: usize,
}

/// An XDR reader over a message: big-endian words, padded opaques.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub fn u32(&mut self) -> Option<u32> {
        let (word, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*word))
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    /// Skips an `opaque<max>` or `string<max>` (a length, the bytes,
    /// padding to 4); None if longer than `max` or cut short.
    pub fn opaque(&mut self, max: u32) -> Option<()> {
        let len = self.u32()?;
        if len > max {
            return None;
        }
        self.skip((len as usize).div_ceil(4) * 4)
    }
}

/// What a record from a client is.
pub enum Parsed {
    /// A well-formed RPC version 2 call, credentials checked.
    Call(Call),
    /// A call to refuse: the reply record to send.
    Refused(Vec<u8>),
    /// Not an RPC call (a reply, cut short): the connection is closed.
    Garbage,
}

/// Longest machine name in an AUTH_UNIX credential (RFC 5531, appendix A).
const MAX_MACHINE_NAME: u32 = 255;
/// Most groups in an AUTH_UNIX credential.
const MAX_GROUPS: u32 = 16;

/// Parses a call header. Nothing that nfsserve would choke on gets
/// through: it decodes the whole message, credential included, before
/// checking any of it, and sizes buffers from the length fields it reads.
pub fn parse_call(msg: &[u8]) -> Parsed {
    let mut r = Reader(msg);
    let (Some(xid), Some(kind), Some(rpcvers)) = (r.u32(), r.u32(), r.u32()) else { return Parsed::Garbage };
    if kind != 0 {
        return Parsed::Garbage;
    }
    if rpcvers != 2 {
        // MSG_DENIED, RPC_MISMATCH, supported versions 2 to 2.
        return Parsed::Refused(reply(&[xid, 1, 1, 0, 2, 2]));
    }
    let header = (|| {
        let (prog, vers, proc) = (r.u32()?, r.u32()?, r.u32()?);
        let cred = (r.u32()?, r.0);
        r.opaque(400)?;
        let verifier = r.u32()?;
        r.opaque(400)?;
        Some((Call { xid, prog, vers, proc, args: msg.len() - r.0.len() }, cred, verifier))
    })();
    let Some((call, (flavor, body), verifier)) = header else { return Parsed::Garbage };
    // AUTH_NONE or AUTH_UNIX, with a verifier nfsserve can decode.
    let cred_ok = match flavor {
        0 => true,
        1 => auth_unix(body).is_some(),
        _ => false,
    };
    if !cred_ok || verifier > 3 {
        // MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK.
        return Parsed::Refused(reply(&[xid, 1, 1, 1, 5]));
    }
    Parsed::Call(call)
}

/// Checks an AUTH_UNIX credential (its length, then its body): stamp,
/// machine name, uid, gid, groups.
fn auth_unix(cred: &[u8]) -> Option<()> {
    let mut r = Reader(cred);
    let len = r.u32()? as usize;
    let mut body = Reader(r.0.get(..len)?);
    body.skip(4)?;
    body.opaque(MAX_MACHINE_NAME)?;
    body.skip(8)?;
    let groups = body.u32()?;
    (groups <= MAX_GROUPS).then_some(())?;
    body.skip(4 * groups as usize)
}

/// A sealed reply record of `words`.
fn reply(words: &[u32]) -> Vec<u8> {
    let mut out = vec![0; HEADER];
    out.extend(words.iter().flat_map(|w| w.to_be_bytes()));
    seal(&mut out);
    out
}

/// A reply record: header space, then an accepted reply to `xid` with a
/// null verifier and `accept_stat` (0 success, 4 garbage arguments); the
/// results follow.
pub fn accepted(xid: u32, accept_stat: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0; HEADER]);
    // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NULL with no body, accept_stat
    for word in [xid, 1, 0, 0, 0, accept_stat] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out
}

/// `accept_stat` of a successful call.
pub const SUCCESS: u32 = 0;
/// `accept_stat` of a call whose arguments could not be decoded.
pub const GARBAGE_ARGS: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// A call with an AUTH_UNIX credential whose machine name is `name`.
    fn call(prog: u32, proc: u32, name: &[u8]) -> Vec<u8> {
        let mut cred = vec![0u8; 4];
        cred.extend_from_slice(&(name.len() as u32).to_be_bytes());
        cred.extend_from_slice(name);
        cred.resize(cred.len().div_ceil(4) * 4, 0);
        cred.extend_from_slice(&[0; 12]);
        call_with(prog, proc, &cred)
    }

    fn call_with(prog: u32, proc: u32, cred: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        for w in [7u32, 0, 2, prog, 3, proc, 1, cred.len() as u32] {
            m.extend_from_slice(&w.to_be_bytes());
        }
        m.extend_from_slice(cred);
        m.resize(m.len().div_ceil(4) * 4, 0);
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(b"args");
        m
    }

    fn parsed(m: &[u8]) -> Option<Call> {
        match parse_call(m) {
            Parsed::Call(c) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn parses_a_call_and_finds_its_arguments() {
        let m = call(100003, 15, b"creds");
        let c = parsed(&m).expect("call");
        assert_eq!((c.xid, c.prog, c.vers, c.proc), (7, 100003, 3, 15));
        assert_eq!(&m[c.args..], b"args");
    }

    #[test]
    fn refuses_replies_truncated_calls_and_oversized_credentials() {
        let mut reply = call(100003, 15, b"");
        reply[7] = 1;
        assert!(matches!(parse_call(&reply), Parsed::Garbage));
        let m = call(100003, 15, b"creds");
        for cut in 0..m.len() - 4 {
            assert!(parsed(&m[..cut]).is_none(), "cut at {cut}");
        }
        assert!(parsed(&call(100003, 15, &[1; 401])).is_none());
        let mut v3 = call(100003, 15, b"");
        v3[11] = 3;
        assert!(matches!(parse_call(&v3), Parsed::Refused(_)), "RPC version 3");
    }

    #[test]
    fn refuses_credentials_nfsserve_would_choke_on() {
        let huge_name = [&[0u8; 4][..], &u32::MAX.to_be_bytes(), &[0; 12]].concat();
        assert!(matches!(parse_call(&call_with(100003, 1, &huge_name)), Parsed::Refused(_)));
        let many_groups = [&[0u8; 4][..], &[0; 4], &[0; 8], &u32::MAX.to_be_bytes()].concat();
        assert!(matches!(parse_call(&call_with(100003, 1, &many_groups)), Parsed::Refused(_)));
        let mut gss = call(100003, 1, b"h");
        gss[27] = 6;
        assert!(matches!(parse_call(&gss), Parsed::Refused(_)), "RPCSEC_GSS");
    }

    #[tokio::test]
    async fn joins_fragments_and_caps_the_record() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&3u32.to_be_bytes());
        wire.extend_from_slice(b"abc");
        wire.extend_from_slice(&(2u32 | LAST_FRAGMENT).to_be_bytes());
        wire.extend_from_slice(b"de");
        let mut buf = Vec::new();
        let mut r = &wire[..];
        assert!(read_record(&mut r, &mut buf, 16).await.expect("record"));
        assert_eq!(&buf[HEADER..], b"abcde");
        assert_eq!(buf[..4], (5 | LAST_FRAGMENT).to_be_bytes());
        assert!(!read_record(&mut r, &mut buf, 16).await.expect("clean end"));
        let mut r = &wire[..];
        assert!(read_record(&mut r, &mut buf, 4).await.is_err(), "over the cap");
        let mut r = &wire[..5];
        assert!(read_record(&mut r, &mut buf, 16).await.is_err(), "cut in a fragment");
    }
}
