// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using CustomAutograd.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// The managed state of one graph node, reached from native callbacks through a GCHandle that the
// node owns (Note [ownership across the ABI]). Immutable once the forward has finished.
// Tensor metadata is packed into one array, Meta, so a node costs few allocations: one
// record (a header word, then the sizes) per edge (per non-null tensor input), then, when gradients are
// materialised, one per output, starting at OutputsStart. No tensor is kept.
internal class NodeState
{
    internal NodeState(AutogradFunction function, InputFlags needsInputGrad, int edgeCount, long[] meta, int outputsStart,
                       int positionalSaved, string[]? savedNames, object? userState)
    {
        Function = function;
        NeedsInputGrad = needsInputGrad;
        EdgeCount = edgeCount;
        Meta = meta;
        OutputsStart = outputsStart;
        PositionalSaved = positionalSaved;
        SavedNames = savedNames;
        UserState = userState;
    }

    internal AutogradFunction Function { get; }

    internal InputFlags NeedsInputGrad { get; }

    // The node's edges: one per non-null tensor input, in order.
    internal int EdgeCount { get; }

    internal long[] Meta { get; }

    // Where the output records start in Meta; -1 when gradients are not materialised.
    internal int OutputsStart { get; }

    // The saved tensors come positional first, then named (in SavedNames order).
    internal int PositionalSaved { get; }

    internal string[]? SavedNames { get; }

    internal object? UserState { get; }

    // Builds the metadata array for these inputs and (optionally) outputs.
    [SkipLocalsInit]   // every entry of the dimension list is written before it is read
    internal static long[] BuildMeta(Tensor?[] inputs, Tensor[]? outputs, out int outputsStart)
    {
        // Each tensor's dimension count is read once (every getter is a call into LibTorchSharp).
        int tensors = inputs.Length + (outputs?.Length ?? 0);
        Span<int> dims = tensors <= 32 ? stackalloc int[32] : new int[tensors];
        int length = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { } t)
                length += 1 + (dims[i] = (int)TensorQueries.Dim(t.Handle));
        }
        outputsStart = -1;
        if (outputs is not null)
        {
            outputsStart = length;
            for (int i = 0; i < outputs.Length; i++)
                length += 1 + (dims[inputs.Length + i] = (int)TensorQueries.Dim(outputs[i].Handle));
        }

        var meta = new long[length];
        int at = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { } t)
                at = WriteRecord(meta, at, i, t.Handle, dims[i]);
        }
        if (outputs is not null)
        {
            for (int i = 0; i < outputs.Length; i++)
            {
                IntPtr h = outputs[i].Handle;
                at = WriteRecord(meta, at, i, h, dims[inputs.Length + i]);
            }
        }
        return meta;
    }

    // A record is one header word, then the sizes. Header bits: 0-7 ndim (libtorch allows at most 64), 8-15 dtype,
    // 16-23 device type, 24-39 device index + 1, 40-63 the tag (the Apply argument index for an edge, the output
    // index for an output).
    private static int WriteRecord(long[] meta, int at, int tag, IntPtr h, int dim)
    {
        DeviceType type = TensorQueries.DeviceType(h);
        // The CPU is one device: its index is never compared or used, so the getter is skipped (-1 is stored).
        int index = type == DeviceType.CPU ? -1 : TensorQueries.DeviceIndex(h);
        long dtype = (byte)TensorQueries.Dtype(h);
        meta[at] = (long)(uint)dim | dtype << 8 | ((long)type & 0xFF) << 16 | ((long)(index + 1) & 0xFFFF) << 24 | (long)tag << 40;
        for (int d = 0; d < dim; d++)
            meta[at + 1 + d] = TensorQueries.Size(h, d);
        return at + 1 + dim;
    }

    // Dimensions of the record at at.
    internal int NDim(int at) => (int)(Meta[at] & 0xFF);

    internal ScalarType DtypeAt(int at) => (ScalarType)((Meta[at] >> 8) & 0xFF);

    internal DeviceType DeviceTypeAt(int at) => (DeviceType)((Meta[at] >> 16) & 0xFF);

    internal int DeviceIndexAt(int at) => (int)((Meta[at] >> 24) & 0xFFFF) - 1;

    // The Apply argument index (edge records) or the output index (output records).
    internal int TagAt(int at) => (int)(Meta[at] >> 40);

    // Size k of the record at at.
    internal long SizeAt(int at, int k) => Meta[at + 1 + k];

    // The shape of the record at at as a new array.
    internal long[] ShapeAt(int at) => Meta.AsSpan(at + 1, NDim(at)).ToArray();

    // Position of the record after the one at at.
    internal int NextRecord(int at) => at + 1 + NDim(at);
}
