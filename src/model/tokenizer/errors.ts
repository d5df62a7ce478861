/**
 * Tokenizer failures, one class per way a caller reacts: a missing folder or file (point the user at the
 * right path), a file that cannot be decoded (re-download it), and a valid file describing a tokenizer
 * promptmesh does not implement (pick a T5/SentencePiece-Unigram checkpoint).
 */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
  constructor(
    message: string,
    /** The folder or file the failure concerns. */
    readonly source: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The tokenizer folder, or every tokenizer file it could hold, does not exist. */
export class TokenizerNotFoundError extends TokenizerError {
  override name = 'TokenizerNotFoundError';
}

/** A tokenizer file exists but is truncated, not the format its name says, or internally inconsistent. */
export class TokenizerFormatError extends TokenizerError {
  override name = 'TokenizerFormatError';
  constructor(
    message: string,
    source: string,
    /** The field (protobuf field path or JSON path) that was wrong, when there is one. */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, source, options);
  }
}

/** A well-formed tokenizer of a kind this implementation does not run (BPE, WordPiece, unknown normalizers). */
export class UnsupportedTokenizerError extends TokenizerError {
  override name = 'UnsupportedTokenizerError';
  constructor(
    message: string,
    source: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, source, options);
  }
}
