// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Graph;

namespace CustomAutograd;

/// <summary>
/// One (output, input) pair whose analytical and numerical Jacobians differ, with its worst element: the one
/// whose <c>|analytical - numerical|</c> is the largest multiple of its tolerance
/// <c>atol + rtol * |numerical|</c>. Jacobians here have one row per output element and one column per input
/// element (row-major order of the tensors' shapes), i.e. <c>J[r, c] = d output[r] / d input[c]</c> (the
/// transpose of PyTorch's gradcheck layout).
/// </summary>
public sealed class GradCheckMismatch
{
    internal GradCheckMismatch(int outputIndex, string outputName, int inputIndex, string inputName,
                               long row, long column, long[] outputElement, long[] inputElement,
                               double numerical, double analytical, double tolerance,
                               long mismatchedCount, long elementCount)
    {
        OutputIndex = outputIndex;
        OutputName = outputName;
        InputIndex = inputIndex;
        InputName = inputName;
        Row = row;
        Column = column;
        OutputElementIndex = outputElement;
        InputElementIndex = inputElement;
        Numerical = numerical;
        Analytical = analytical;
        Tolerance = tolerance;
        MismatchedCount = mismatchedCount;
        ElementCount = elementCount;
    }

    /// <summary>The output's position among the function's outputs.</summary>
    public int OutputIndex { get; }

    /// <summary>The output's name in reports, e.g. "output 1" (GradGradCheck: "grad of input 0").</summary>
    public string OutputName { get; }

    /// <summary>The input's position among the function's inputs (GradGradCheck: the inputs, then the output
    /// gradients).</summary>
    public int InputIndex { get; }

    /// <summary>The input's name in reports, e.g. "input 0" (GradGradCheck: also "grad_outputs[0]").</summary>
    public string InputName { get; }

    /// <summary>The worst element's row in the Jacobian: the flat (row-major) index of the output element.</summary>
    public long Row { get; }

    /// <summary>The worst element's column in the Jacobian: the flat (row-major) index of the input element.</summary>
    public long Column { get; }

    /// <summary>The worst element's output element, as an index per dimension of the output (empty for a scalar).</summary>
    public IReadOnlyList<long> OutputElementIndex { get; }

    /// <summary>The worst element's input element, as an index per dimension of the input (empty for a scalar).</summary>
    public IReadOnlyList<long> InputElementIndex { get; }

    /// <summary>The finite-difference derivative at the worst element.</summary>
    public double Numerical { get; }

    /// <summary>The backward's derivative at the worst element.</summary>
    public double Analytical { get; }

    /// <summary><c>|Analytical - Numerical|</c> (NaN when either is NaN).</summary>
    public double AbsoluteDifference => Math.Abs(Analytical - Numerical);

    /// <summary>The worst element's tolerance, <c>atol + rtol * |Numerical|</c>.</summary>
    public double Tolerance { get; }

    /// <summary>How many elements of this Jacobian differ beyond their tolerance (in fast mode this counts the
    /// element-wise re-check, and may be 0 when only the projection failed).</summary>
    public long MismatchedCount { get; }

    /// <summary>The number of elements of this Jacobian.</summary>
    public long ElementCount { get; }

    /// <summary>Fast mode: the projection <c>v^T J u</c> of the numerical Jacobian; null in slow mode.</summary>
    public double? ProjectedNumerical { get; internal set; }

    /// <summary>Fast mode: the projection <c>v^T J u</c> of the analytical Jacobian; null in slow mode.</summary>
    public double? ProjectedAnalytical { get; internal set; }

    /// <summary>Fast mode: the scaled tolerance the projections were compared with; null in slow mode.</summary>
    public double? ProjectedTolerance { get; internal set; }

    /// <summary>This pair's whole Jacobians, when they have at most 16 rows and 16 columns or
    /// <see cref="GradCheckOptions.ReturnJacobians"/> was set; otherwise null.</summary>
    public GradCheckJacobian? Jacobian { get; internal set; }

    /// <summary>Describes the worst element, e.g. <c>d output 0[1, 2] / d input 1[2, 0]</c>.</summary>
    /// <returns>The description.</returns>
    public string DescribeElement() =>
        $"d {OutputName}{ShapeFormat.Format(OutputElementIndex)} / d {InputName}{ShapeFormat.Format(InputElementIndex)}";

    /// <inheritdoc/>
    public override string ToString() =>
        $"{OutputName} w.r.t. {InputName}: worst {DescribeElement()}: numerical {GradCheckFormat.Number(Numerical)}, " +
        $"analytical {GradCheckFormat.Number(Analytical)} ({MismatchedCount} of {ElementCount} elements beyond tolerance)";
}
