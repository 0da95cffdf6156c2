"""What a damaged Parquet file can raise while pyarrow opens or reads it.

Flipped or missing bytes surface as OS errors, any Arrow exception (invalid data, "not implemented" for a
corrupted type width, key errors in the schema), or a UnicodeDecodeError for a name in a damaged footer.
Readers catch exactly :data:`PARQUET_ERRORS` and turn them into a corrupt-data error naming the file; anything
else is a bug and is left to surface.
"""

from __future__ import annotations

import pyarrow as pa

#: Exceptions that mean "these Parquet bytes are damaged", not "rdstd has a bug".
PARQUET_ERRORS: tuple[type[Exception], ...] = (OSError, pa.ArrowException, UnicodeDecodeError)
