// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;

namespace CustomAutograd.Interop;

/// <summary>
/// Shape queries straight from LibTorchSharp's exports, without the managed array and delegate that
/// TorchSharp's <c>Tensor.shape</c> allocates on every call (the hot path reads shapes on every Apply).
/// </summary>
internal static unsafe class TensorQueries
{
    internal static delegate* unmanaged<IntPtr, long> NDimension;
    internal static delegate* unmanaged<IntPtr, long, long> SizeAt;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Dim(IntPtr tensor) => NDimension(tensor);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Size(IntPtr tensor, long dim) => SizeAt(tensor, dim);
}
