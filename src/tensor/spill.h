// Moving a tensor out of the heap into a file-backed mapping: for results that are
// kept a long while but read rarely (the converted layers of a model waiting for the
// output write). The pages are then the kernel's to drop and re-read, like those of a
// memory-mapped model file, and the heap stays flat however many are kept.
#pragma once
#include "tensor/typed_tensor.h"

namespace mlar {

// A view of a read-only mapping of an unlinked temporary file (in the system's temp
// directory, $TMPDIR) holding t's bytes; the file disappears with the last copy of the
// view. An empty tensor comes back as it is. Throws mlar::Error naming the file when
// it cannot be created, written or mapped (e.g. no space left).
TypedTensor spill_to_file(const TypedTensor& t);

}  // namespace mlar
