// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using CustomAutograd.Native;
using static TorchSharp.torch;

namespace CustomAutograd.TorchSharpInternals;

// The tensors a Backward receives from the engine (its incoming gradients and its saved tensors): managed
// wrappers around handles the shim handed over, valid while the Backward runs. They are kept out of every
// TorchSharp dispose scope (no scope bookkeeping per wrapper, and TorchSharp's scope statistics never see
// them); the trampoline itself hands them back to libtorch or releases them when the Backward returns.
internal static class AdoptedTensors
{
    // TorchSharp 0.107's internal Tensor(IntPtr handle, bool register) constructor: with register false the
    // wrapper joins no dispose scope. Reached through an UnsafeAccessor (no reflection); should a TorchSharp
    // build lack it, the public factory plus DetachFromDisposeScope gives the same result, a little slower.
    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Tensor NewUnregistered(IntPtr handle, bool register);

    private const int Unknown = 0, Accessor = 1, Fallback = 2;
    private static int s_mode;

    // Whether wrappers are made with TorchSharp's internal constructor; false before the first wrapper.
    internal static bool UsesInternalConstructor => s_mode == Accessor;

    // Switches between the internal constructor (true: probed again at the next wrapper) and the public fallback
    // (false), for tests of the fallback.
    internal static void SetInternalConstructor(bool enabled) => s_mode = enabled ? Unknown : Fallback;

    // Wraps a handle the caller owns in a tensor that belongs to no dispose scope.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Tensor Wrap(IntPtr handle) => s_mode == Accessor ? NewUnregistered(handle, false) : WrapSlow(handle);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Tensor WrapSlow(IntPtr handle)
    {
        if (s_mode == Unknown)
        {
            try
            {
                Tensor t = NewUnregistered(handle, false);
                s_mode = Accessor;
                return t;
            }
            catch (MissingMemberException)
            {
                s_mode = Fallback;
            }
        }
        Tensor wrapped = Tensor.UnsafeCreateTensor(handle);
        wrapped.DetachFromDisposeScope();
        return wrapped;
    }

    // Releases the native handle of a wrapper made by Wrap unless it is already gone (disposed by
    // the Backward, or handed back to libtorch). The wrapper reads as disposed afterwards.
    internal static unsafe void Release(Tensor? tensor)
    {
        if (tensor is null || tensor.IsInvalid)
            return;
        IntPtr handle = tensor.DecoupleFromNativeHandle();
        NativeRuntime.DisposeTensorHandle(handle);
    }
}
