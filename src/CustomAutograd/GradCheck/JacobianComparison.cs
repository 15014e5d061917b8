// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// Compares a numerical and an analytical Jacobian element-wise and describes what differs: the worst element,
// how many elements fail, and the Jacobians themselves when they are small enough to print.
internal static class JacobianComparison
{
    // Jacobians of a failing pair up to this many rows and columns are kept for the report.
    private const int ReportJacobianLimit = 16;

    // Compares two Jacobians element-wise with |a - n| &lt;= atol + rtol |n| (NaN fails) on their device and
    // describes the worst element: the one whose difference is the largest multiple of its tolerance. Returns
    // null for empty Jacobians, and when all elements pass and onlyIfFailing is set.
    internal static GradCheckMismatch? Compare(CheckedFunction f, int o, int i, Tensor numerical, Tensor analytical, bool onlyIfFailing)
    {
        long count = numerical.numel();
        if (count == 0)
            return null;
        using DisposeScope scope = torch.NewDisposeScope();
        GradCheckOptions options = f.Options;
        Tensor a = analytical.to(numerical.device);
        Tensor difference = (a - numerical).abs();
        using Scalar rtol = KeptScalars.Of(options.Rtol), atol = KeptScalars.Of(options.Atol);
        Tensor tolerance = numerical.abs().mul(rtol).add(atol, KeptScalars.One);
        Tensor within = difference <= tolerance;
        long failing = count - within.sum().item<long>();
        if (failing == 0 && onlyIfFailing)
            return null;
        Tensor ratio = torch.where(difference.eq(KeptScalars.Zero), torch.zeros_like(difference), difference / tolerance)
                            .nan_to_num(double.PositiveInfinity, double.PositiveInfinity, double.NegativeInfinity);
        long worst = ratio.reshape(-1).argmax().item<long>();
        long columns = numerical.shape[1];
        long row = worst / columns, column = worst % columns;
        double n = numerical[row, column].item<double>();
        double an = a[row, column].item<double>();
        return new GradCheckMismatch(o, f.OutputName(o), i, f.InputName(i), row, column,
                                     FlatIndex.Unravel(row, f.OutputShape(o)), FlatIndex.Unravel(column, f.Input(i).shape),
                                     n, an, options.Atol + options.Rtol * Math.Abs(n), failing, count);
    }

    // The pair's Jacobians as managed arrays, if they have at most 16 rows and 16 columns.
    internal static GradCheckJacobian? SmallJacobian(CheckedFunction f, int o, int i, Tensor numerical, Tensor analytical) =>
        numerical.shape[0] <= ReportJacobianLimit && numerical.shape[1] <= ReportJacobianLimit
            ? ToManaged(f, o, i, numerical, analytical)
            : null;

    // The pair's Jacobians as managed arrays.
    internal static GradCheckJacobian ToManaged(CheckedFunction f, int o, int i, Tensor numerical, Tensor analytical) =>
        new(o, f.OutputName(o), i, f.InputName(i), ToArray(numerical), ToArray(analytical));

    // Fails result with a Jacobian mismatch, naming the first mismatching pair.
    internal static void FailMismatch(CheckedFunction f, GradCheckResult result, List<GradCheckMismatch> mismatches)
    {
        GradCheckMismatch first = mismatches[0];
        result.Mismatches = mismatches.ToArray();
        f.Fail(result, GradCheckFailureKind.JacobianMismatch, first.OutputIndex, first.InputIndex,
               $"Jacobian mismatch for {first.OutputName} with respect to {first.InputName}.");
    }

    private static double[,] ToArray(Tensor matrix)
    {
        int rows = checked((int)matrix.shape[0]), columns = checked((int)matrix.shape[1]);
        var array = new double[rows, columns];
        if (rows * columns == 0)
            return array;
        using Tensor cpu = matrix.detach().cpu().contiguous();
        double[] values = cpu.data<double>().ToArray();
        Buffer.BlockCopy(values, 0, array, 0, values.Length * sizeof(double));
        return array;
    }
}
