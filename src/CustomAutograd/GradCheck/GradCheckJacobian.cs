// SPDX-License-Identifier: MIT
using System.Text;

namespace CustomAutograd;

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
