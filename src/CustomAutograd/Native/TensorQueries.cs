// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Native;

// Tensor metadata read straight from LibTorchSharp's exports on the hot path: no managed array and delegate
// (as TorchSharp's Tensor.shape allocates), no error check per property, and no GC transition (these
// getters are trivial, never block and never call back into managed code).
internal static unsafe class TensorQueries
{
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, long> NDimension;
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, long, long> SizeAt;
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, byte> RequiresGrad;
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, int> DeviceTypeOf;
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, int> DeviceIndexOf;
    internal static delegate* unmanaged[SuppressGCTransition]<IntPtr, sbyte> ScalarTypeOf;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Dim(IntPtr tensor) => NDimension(tensor);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Size(IntPtr tensor, long dim) => SizeAt(tensor, dim);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool RequiresGradOf(IntPtr tensor) => RequiresGrad(tensor) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static DeviceType DeviceType(IntPtr tensor) => (DeviceType)DeviceTypeOf(tensor);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int DeviceIndex(IntPtr tensor) => DeviceIndexOf(tensor);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ScalarType Dtype(IntPtr tensor) => (ScalarType)ScalarTypeOf(tensor);
}
