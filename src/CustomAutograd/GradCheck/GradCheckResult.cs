// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace CustomAutograd;

/// <summary>What a failed <see cref="GradCheck"/> or <see cref="GradGradCheck"/> found.</summary>
public enum GradCheckFailureKind
{
    /// <summary>The check passed.</summary>
    None,

    /// <summary>The analytical Jacobian (from backward) differs from the numerical one (finite differences);
    /// see <see cref="GradCheckResult.Mismatches"/>.</summary>
    JacobianMismatch,

    /// <summary>Backward threw while the analytical Jacobian was computed; see <see cref="GradCheckResult.Exception"/>.</summary>
    BackwardFailed,

    /// <summary>Running backward twice with the same input and output gradient gave results further apart than
    /// <see cref="GradCheckOptions.NondetTol"/>.</summary>
    BackwardNotReentrant,

    /// <summary>A gradient's shape differs from its input's.</summary>
    GradShapeMismatch,

    /// <summary>A gradient's dtype differs from its input's.</summary>
    GradDtypeMismatch,

    /// <summary>A gradient is on another device than its input.</summary>
    GradDeviceMismatch,

    /// <summary>Backward with all output gradients zero gave a non-zero input gradient.</summary>
    BackwardNotMultipliedByGradOutput,

    /// <summary>Backward failed, or gave non-zero input gradients, when some output gradients were undefined
    /// (<see cref="GradCheckOptions.CheckUndefinedGrad"/>).</summary>
    UndefinedGradNotSupported,

    /// <summary>No output requires grad, yet the outputs change when an input is perturbed.</summary>
    NonZeroNumericalGradient,
}

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
        $"d {OutputName}{GradCheckFormat.Index(OutputElementIndex)} / d {InputName}{GradCheckFormat.Index(InputElementIndex)}";

    /// <inheritdoc/>
    public override string ToString() =>
        $"{OutputName} w.r.t. {InputName}: worst {DescribeElement()}: numerical {GradCheckFormat.Number(Numerical)}, " +
        $"analytical {GradCheckFormat.Number(Analytical)} ({MismatchedCount} of {ElementCount} elements beyond tolerance)";
}

/// <summary>
/// The numerical and analytical Jacobians of one (output, input) pair: one row per output element and one
/// column per input element, in row-major order of the tensors' shapes, i.e. <c>J[r, c] = d output[r] / d input[c]</c>.
/// </summary>
public sealed class GradCheckJacobian
{
    private readonly double[,] _numerical;
    private readonly double[,] _analytical;

    internal GradCheckJacobian(int outputIndex, string outputName, int inputIndex, string inputName,
                               double[,] numerical, double[,] analytical)
    {
        OutputIndex = outputIndex;
        OutputName = outputName;
        InputIndex = inputIndex;
        InputName = inputName;
        _numerical = numerical;
        _analytical = analytical;
    }

    /// <summary>The output's position among the function's outputs.</summary>
    public int OutputIndex { get; }

    /// <summary>The output's name in reports.</summary>
    public string OutputName { get; }

    /// <summary>The input's position among the function's inputs.</summary>
    public int InputIndex { get; }

    /// <summary>The input's name in reports.</summary>
    public string InputName { get; }

    /// <summary>The number of rows: the output's element count.</summary>
    public int Rows => _numerical.GetLength(0);

    /// <summary>The number of columns: the input's element count.</summary>
    public int Columns => _numerical.GetLength(1);

    /// <summary>Returns a copy of the finite-difference Jacobian.</summary>
    /// <returns>A new array, <c>[Rows, Columns]</c>.</returns>
    public double[,] GetNumerical() => (double[,])_numerical.Clone();

    /// <summary>Returns a copy of the Jacobian computed by backward.</summary>
    /// <returns>A new array, <c>[Rows, Columns]</c>.</returns>
    public double[,] GetAnalytical() => (double[,])_analytical.Clone();

    /// <summary>One element of the finite-difference Jacobian.</summary>
    /// <param name="row">The output element (flat index).</param>
    /// <param name="column">The input element (flat index).</param>
    /// <returns>The derivative.</returns>
    public double Numerical(int row, int column) => _numerical[row, column];

    /// <summary>One element of the analytical Jacobian.</summary>
    /// <param name="row">The output element (flat index).</param>
    /// <param name="column">The input element (flat index).</param>
    /// <returns>The derivative.</returns>
    public double Analytical(int row, int column) => _analytical[row, column];

    internal void AppendTo(StringBuilder sb, string indent)
    {
        sb.Append(indent).Append("Numerical Jacobian (rows: ").Append(OutputName).Append(" elements, columns: ")
          .Append(InputName).AppendLine(" elements):");
        GradCheckFormat.AppendMatrix(sb, _numerical, indent + "  ");
        sb.Append(indent).AppendLine("Analytical Jacobian:");
        GradCheckFormat.AppendMatrix(sb, _analytical, indent + "  ");
    }
}

/// <summary>
/// The outcome of <see cref="GradCheck"/> or <see cref="GradGradCheck"/>. <see cref="ToString"/> is a readable
/// multi-line report naming the failing output and input, the worst element and both values.
/// </summary>
public sealed class GradCheckResult
{
    internal GradCheckResult(string checkName, GradCheckOptions options, int inputCount, int differentiableInputCount,
                             int outputCount, int differentiableOutputCount)
    {
        CheckName = checkName;
        Options = options;
        InputCount = inputCount;
        DifferentiableInputCount = differentiableInputCount;
        OutputCount = outputCount;
        DifferentiableOutputCount = differentiableOutputCount;
    }

    /// <summary>"GradCheck" or "GradGradCheck".</summary>
    public string CheckName { get; }

    /// <summary>The options the check ran with.</summary>
    public GradCheckOptions Options { get; }

    /// <summary>True when every check passed.</summary>
    public bool Passed => FailureKind == GradCheckFailureKind.None;

    /// <summary>What failed first; <see cref="GradCheckFailureKind.None"/> when the check passed.</summary>
    public GradCheckFailureKind FailureKind { get; internal set; }

    /// <summary>A one-line description of the failure; null when the check passed.</summary>
    public string? FailureMessage { get; internal set; }

    /// <summary>The output involved in the failure (for a Jacobian mismatch, that of the first mismatching pair,
    /// outputs in order, then inputs); null when none is.</summary>
    public int? OutputIndex { get; internal set; }

    /// <summary>The input involved in the failure; null when none is.</summary>
    public int? InputIndex { get; internal set; }

    /// <summary>The name of <see cref="OutputIndex"/> in reports, e.g. "output 0".</summary>
    public string? OutputName { get; internal set; }

    /// <summary>The name of <see cref="InputIndex"/> in reports, e.g. "input 1" or "grad_outputs[0]".</summary>
    public string? InputName { get; internal set; }

    /// <summary>Jacobian mismatch: the worst element's index into the output (one index per dimension).</summary>
    public IReadOnlyList<long>? OutputElementIndex => FirstMismatch?.OutputElementIndex;

    /// <summary>Jacobian mismatch: the worst element's index into the input (one index per dimension).</summary>
    public IReadOnlyList<long>? InputElementIndex => FirstMismatch?.InputElementIndex;

    /// <summary>Jacobian mismatch: the finite-difference derivative at the worst element.</summary>
    public double? Numerical => FirstMismatch?.Numerical;

    /// <summary>Jacobian mismatch: the backward's derivative at the worst element.</summary>
    public double? Analytical => FirstMismatch?.Analytical;

    /// <summary>Every mismatching (output, input) pair, outputs in order, then inputs; empty when none.</summary>
    public IReadOnlyList<GradCheckMismatch> Mismatches { get; internal set; } = Array.Empty<GradCheckMismatch>();

    /// <summary>The first of <see cref="Mismatches"/>, or null.</summary>
    public GradCheckMismatch? FirstMismatch => Mismatches.Count > 0 ? Mismatches[0] : null;

    /// <summary>With <see cref="GradCheckOptions.ReturnJacobians"/> (slow mode): the Jacobians of every checked
    /// (output, input) pair; otherwise empty.</summary>
    public IReadOnlyList<GradCheckJacobian> Jacobians { get; internal set; } = Array.Empty<GradCheckJacobian>();

    /// <summary>The exception behind <see cref="GradCheckFailureKind.BackwardFailed"/> or
    /// <see cref="GradCheckFailureKind.UndefinedGradNotSupported"/> (for a failing custom Backward, the
    /// <see cref="CustomAutogradException"/> whose inner exception is what the Backward threw); otherwise null.</summary>
    public Exception? Exception { get; internal set; }

    /// <summary>Warnings, as PyTorch's gradcheck gives them (e.g. an input that is not float64).</summary>
    public IReadOnlyList<string> Warnings { get; internal set; } = Array.Empty<string>();

    /// <summary>
    /// True when an input requiring grad or a differentiable output is not float64: finite differences with
    /// the default eps are then inaccurate, and the verdict is unreliable (PyTorch warns likewise).
    /// </summary>
    public bool LowPrecision { get; internal set; }

    /// <summary>The number of inputs.</summary>
    public int InputCount { get; }

    /// <summary>The number of inputs that require grad (only these are checked).</summary>
    public int DifferentiableInputCount { get; }

    /// <summary>The number of outputs.</summary>
    public int OutputCount { get; }

    /// <summary>The number of outputs that require grad (only these are checked).</summary>
    public int DifferentiableOutputCount { get; }

    /// <summary>A multi-line report: verdict, failure details with the worst element and both values, the
    /// Jacobians when small, other mismatching pairs, options and warnings.</summary>
    /// <returns>The report.</returns>
    public override string ToString()
    {
        var sb = new StringBuilder();
        string mode = Options.FastMode ? "fast mode" : "slow mode";
        if (Passed)
        {
            sb.Append(CheckName).Append(" passed (").Append(mode).Append("): ")
              .Append(DifferentiableInputCount).Append(" of ").Append(InputCount).Append(" inputs and ")
              .Append(DifferentiableOutputCount).Append(" of ").Append(OutputCount).AppendLine(" outputs differentiable.");
        }
        else
        {
            sb.Append(CheckName).Append(" failed (").Append(mode).Append("): ").AppendLine(FailureMessage);
            if (FirstMismatch is { } m)
                AppendMismatch(sb, m);
            if (Exception is { } e)
            {
                sb.Append("  Exception: ").Append(e.GetType().Name).Append(": ").AppendLine(e.Message);
                if (e.InnerException is { } inner)
                    sb.Append("    caused by ").Append(inner.GetType().Name).Append(": ").AppendLine(inner.Message);
            }
            for (int i = 1; i < Mismatches.Count; i++)
                sb.Append("  Also mismatched: ").AppendLine(Mismatches[i].ToString());
        }
        sb.Append("  Options: eps ").Append(GradCheckFormat.Number(Options.Eps))
          .Append(", atol ").Append(GradCheckFormat.Number(Options.Atol))
          .Append(", rtol ").Append(GradCheckFormat.Number(Options.Rtol))
          .Append(", nondet_tol ").Append(GradCheckFormat.Number(Options.NondetTol))
          .Append(", check_undefined_grad ").Append(Options.CheckUndefinedGrad ? "on" : "off")
          .Append(", check_grad_dtypes ").Append(Options.CheckGradDtypes ? "on" : "off").AppendLine(".");
        foreach (string w in Warnings)
            sb.Append("  Warning: ").AppendLine(w);
        return sb.ToString();
    }

    private static void AppendMismatch(StringBuilder sb, GradCheckMismatch m)
    {
        sb.Append("  Worst element: ").Append(m.DescribeElement())
          .Append(" (Jacobian row ").Append(m.Row).Append(", column ").Append(m.Column).AppendLine(")");
        sb.Append("    numerical:  ").AppendLine(GradCheckFormat.Number(m.Numerical));
        sb.Append("    analytical: ").AppendLine(GradCheckFormat.Number(m.Analytical));
        sb.Append("    |difference| ").Append(GradCheckFormat.Number(m.AbsoluteDifference))
          .Append(m.AbsoluteDifference <= m.Tolerance ? " <= " : " > ")
          .Append("tolerance ").Append(GradCheckFormat.Number(m.Tolerance)).AppendLine(" (atol + rtol * |numerical|)");
        sb.Append("  ").Append(m.MismatchedCount).Append(" of ").Append(m.ElementCount)
          .AppendLine(" elements of this Jacobian are beyond tolerance.");
        if (m.ProjectedNumerical is double pn && m.ProjectedAnalytical is double pa)
        {
            sb.Append("  Fast mode projections v^T J u: numerical ").Append(GradCheckFormat.Number(pn))
              .Append(", analytical ").Append(GradCheckFormat.Number(pa))
              .Append(", tolerance ").Append(GradCheckFormat.Number(m.ProjectedTolerance ?? double.NaN)).AppendLine(".");
            if (m.MismatchedCount == 0)
                sb.AppendLine("  The element-wise re-check passes: only the projection failed; consider a larger atol.");
        }
        m.Jacobian?.AppendTo(sb, "  ");
    }
}

/// <summary>Number, index and matrix formatting for reports (invariant culture).</summary>
internal static class GradCheckFormat
{
    internal static string Number(double value) =>
        (value + 0.0).ToString("G7", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);

    internal static string Index(IReadOnlyList<long> index)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < index.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            sb.Append(index[i].ToString(CultureInfo.InvariantCulture));
        }
        return sb.Append(']').ToString();
    }

    internal static string Shape(long[] shape) => Index(shape);

    internal static void AppendMatrix(StringBuilder sb, double[,] matrix, string indent)
    {
        int rows = matrix.GetLength(0), cols = matrix.GetLength(1);
        var cells = new string[rows, cols];
        int width = 1;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                cells[r, c] = (matrix[r, c] + 0.0).ToString("G5", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
                width = Math.Max(width, cells[r, c].Length);
            }
        }
        for (int r = 0; r < rows; r++)
        {
            sb.Append(indent);
            for (int c = 0; c < cols; c++)
            {
                if (c > 0)
                    sb.Append(' ');
                sb.Append(cells[r, c].PadLeft(width));
            }
            sb.AppendLine();
        }
    }
}
