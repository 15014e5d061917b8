// SPDX-License-Identifier: MIT
using System;
using System.Globalization;
using System.Text;

namespace CustomAutograd;

// Number and matrix formatting for reports (invariant culture); shapes and element indices are
// formatted by Graph.ShapeFormat.
internal static class GradCheckFormat
{
    // A number with digits significant digits, -0 written as 0.
    internal static string Number(double value, int digits = 7) =>
        (value + 0.0).ToString("G" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture)
                     .Replace("E", "e", StringComparison.Ordinal);

    // Appends a matrix, one indented line per row, columns right-aligned, five significant digits.
    internal static void AppendMatrix(StringBuilder sb, double[,] matrix, string indent)
    {
        int rows = matrix.GetLength(0), cols = matrix.GetLength(1);
        var cells = new string[rows, cols];
        int width = 1;
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                cells[r, c] = Number(matrix[r, c], digits: 5);
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
