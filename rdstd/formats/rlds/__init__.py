"""RLDS (tfds builder directories of TFRecord or ArrayRecord shards) read without TensorFlow.

Modules: :mod:`.tfrecord` framing and CRC-32C; :mod:`.proto` the ``tf.train.Example`` messages for the protobuf
runtime; :mod:`.features` the ``features.json`` walk; :mod:`.example` one record to numpy; :mod:`.builder` the
builder directory; :mod:`.shards` TFRecord/ArrayRecord; :mod:`.quirks` what the data says about itself;
:mod:`.reader` the backend. See ``docs/formats/rlds.md``.
"""

from rdstd.formats.rlds.reader import RldsBackend, RldsDataset

__all__ = ["RldsBackend", "RldsDataset"]
