// SPDX-License-Identifier: MIT
using System;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Interop;

/// <summary>
/// Checks what a Backward returned before libtorch sees it, so that every mistake is reported with the
/// function's name, the input index and the expected and actual values (libtorch's own messages would
/// name LibTorchSharp's node type instead).
/// </summary>
internal static class GradientValidation
{
    /// <summary>
    /// Validates <paramref name="inputGrads"/> (one per Apply argument) against the node's edges. Extra trailing
    /// nulls are allowed, as in PyTorch. Throws <see cref="InvalidOperationException"/> on any mismatch.
    /// </summary>
    internal static void MapToEdges(NodeState node, Tensor?[]? inputGrads, int edgeCount)
    {
        string name = node.Function.Name;
        int expected = node.NeedsInputGrad.Length;
        if (inputGrads is null)
            throw new InvalidOperationException($"'{name}': the Backward returned null instead of the gradients.");
        if (inputGrads.Length != expected)
        {
            bool trailingNulls = inputGrads.Length > expected;
            for (int i = expected; trailingNulls && i < inputGrads.Length; i++)
                trailingNulls = inputGrads[i] is null;
            if (!trailingNulls)
            {
                throw new InvalidOperationException(
                    $"'{name}': the Backward returned an incorrect number of gradients (expected {expected}, got {inputGrads.Length}).");
            }
        }

        int e = 0;
        for (int i = 0; i < expected; i++)
        {
            bool hasEdge = e < edgeCount && node.Edges[e].InputIndex == i;
            Tensor? g = inputGrads[i];
            if (!hasEdge)
            {
                if (g is not null)
                {
                    throw new InvalidOperationException(
                        $"'{name}': the Backward returned a gradient for input {i}, but that input was not a tensor (null); return null there.");
                }
                continue;
            }
            EdgeInfo edge = node.Edges[e++];
            if (g is null)
                continue;
            if (g.IsInvalid)
                throw new InvalidOperationException($"'{name}': the gradient returned for input {i} has been disposed.");
            CheckShape(name, i, edge.Shape, g.shape);
            CheckDevice(name, i, edge, g);
        }
    }

    private static void CheckShape(string name, int index, long[] inputShape, long[] gradShape)
    {
        if (inputShape.AsSpan().SequenceEqual(gradShape) || IsExpandableTo(inputShape, gradShape))
            return;
        throw new InvalidOperationException(
            $"'{name}': the gradient returned for input {index} has shape {Format(gradShape)}, but the input has shape " +
            $"{Format(inputShape)} (a gradient must have the input's shape, or a shape the input broadcasts to, which is then summed).");
    }

    private static void CheckDevice(string name, int index, EdgeInfo edge, Tensor g)
    {
        DeviceType type = g.device_type;
        int deviceIndex = g.device_index;
        if (type == edge.DeviceType && (deviceIndex == edge.DeviceIndex || type == DeviceType.CPU))
            return;
        throw new InvalidOperationException(
            $"'{name}': the gradient returned for input {index} is on {FormatDevice(type, deviceIndex)}, but the input is on " +
            $"{FormatDevice(edge.DeviceType, edge.DeviceIndex)}.");
    }

    /// <summary>libtorch's is_expandable_to: can <paramref name="shape"/> be broadcast to <paramref name="desired"/>.</summary>
    internal static bool IsExpandableTo(long[] shape, long[] desired)
    {
        if (shape.Length > desired.Length)
            return false;
        for (int i = 0; i < shape.Length; i++)
        {
            long size = shape[shape.Length - 1 - i];
            long target = desired[desired.Length - 1 - i];
            if (size != target && size != 1)
                return false;
        }
        return true;
    }

    internal static string Format(long[] shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0)
                sb.Append(", ");
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }

    private static string FormatDevice(DeviceType type, int index) =>
        type == DeviceType.CPU ? "cpu" : type.ToString().ToLowerInvariant() + ":" + index;
}
