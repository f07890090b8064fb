//! Sans-IO HTTP/1.1 codec for embedders that own raw byte streams.
