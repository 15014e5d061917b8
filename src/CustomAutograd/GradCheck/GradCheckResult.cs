// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Text;

namespace CustomAutograd;

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
