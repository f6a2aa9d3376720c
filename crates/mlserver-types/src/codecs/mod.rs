//! MLServer content types (filled in by the codecs work).
