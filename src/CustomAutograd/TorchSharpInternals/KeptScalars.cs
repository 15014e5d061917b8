// SPDX-License-Identifier: MIT
using TorchSharp;

namespace CustomAutograd.TorchSharpInternals;

// Note [kept scalars]: TorchSharp 0.107 turns a number into a Scalar object with a finalizer and reads its handle
// without keeping the object alive across the native call (`x + 1`, `x.fill_(0)`, and hidden ones: `a + b` and
// `x.add(s)` pass an implicit alpha of 1, `t.ToDouble()` goes through a temporary Scalar). When another thread
// allocates during that call (the finalizer thread releasing a graph is enough), a garbage collection can
// finalize the Scalar and libtorch reads freed memory ("Expected false to be true" from c10's Scalar.h, 289
// times in 2 million `x + 1` calls with one allocating thread; none with kept Scalars). The library therefore
// never lets TorchSharp make a Scalar: constants come from these static fields, other values from Of inside a
// `using` declaration, and GuardTests.Library_NeverHandsTorchSharpATemporaryScalar checks the compiled IL.
internal static class KeptScalars
{
    internal static readonly Scalar Zero = 0.ToScalar();
    internal static readonly Scalar One = 1.ToScalar();
    internal static readonly Scalar Two = 2.ToScalar();

    // A Scalar for a value known only at run time; the caller owns it and must hold it with `using`, which keeps
    // it alive until the end of its block.
    internal static Scalar Of(double value) => value.ToScalar();
}
